"""Moving a tenant to another server (`manage.py move_tenant`), on a real second MariaDB (`db2`).

What an operator and the tenant's callers see: rows and views intact and served from the
target, the source kept then dropped after a backup, the target's grants, a verification that
fails, writes refused (503, never lost) while it moves, other tenants untouched, a drain.
Killed moves: tests/test_moves_killed.py.
"""

from __future__ import annotations

import io

import MySQLdb
import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connections

from m3saas.audit.models import AuditEntry
from m3saas.engines import engine
from m3saas.servers import DEFAULT_SERVER, server_config
from tenants.models import DatabaseServer, Tenant, TenantMove
from tenants.moves import MoveVerificationError, tenant_move
from tenants.selectors import tenant_info_fresh
from tenants.servers import servers_sync
from tenants.tests.helpers import animals_on, databases, query


def move(*args: str) -> str:
    out = io.StringIO()
    call_command("move_tenant", *args, stdout=out, stderr=io.StringIO())
    return out.getvalue()


@pytest.mark.django_db
def test_with_one_server_move_tenant_says_so_in_one_line(make_tenant):
    """SQLite (one implicit server) and a MariaDB config without tenants.servers alike."""
    tenant = make_tenant()
    with pytest.raises(CommandError) as refused:
        call_command("move_tenant", tenant.name, "--to", "db2")
    assert "there is no other server to move a tenant to" in str(refused.value)
    assert "\n" not in str(refused.value)
    assert Tenant.objects.get(pk=tenant.id).server_name == DEFAULT_SERVER


@pytest.mark.mariadb
@pytest.mark.django_db(transaction=True)
def test_a_moved_tenant_keeps_its_rows_and_views_and_is_served_from_the_target(two_servers, movable, tenant_client):
    tenant = movable(modules=[("test", 2)])
    client = tenant_client(tenant)
    for name in ("Ant", "Bee", "Bat"):
        assert client.post(f"/{tenant.id}/test/v2/animals", {"name": name, "species": "x"}).status_code == 201
    before = client.get(f"/{tenant.id}/test/v2/animal-stats").json()
    assert before == [{"letter": "A", "animals": 1}, {"letter": "B", "animals": 2}]

    out = move(tenant.name, "--to", two_servers)

    assert f"{tenant.name}: moved from default to {two_servers}" in out
    assert Tenant.objects.get(pk=tenant.id).server_name == two_servers
    # Served from db2: the same rows and the same view, and a new write lands there.
    assert [a["name"] for a in client.get(f"/{tenant.id}/test/v2/animals").json()] == ["Ant", "Bee", "Bat"]
    assert client.get(f"/{tenant.id}/test/v2/animal-stats").json() == before
    assert client.post(f"/{tenant.id}/test/v2/animals", {"name": "Cat", "species": "y"}).status_code == 201
    assert animals_on(two_servers, tenant, "test_v2_animal") == ["Ant", "Bee", "Bat", "Cat"]
    # The source is kept, as it was at the switch, and its user can reach it no more.
    assert animals_on(DEFAULT_SERVER, tenant, "test_v2_animal") == ["Ant", "Bee", "Bat"]
    grants = [row[0] for row in query(DEFAULT_SERVER, "SHOW GRANTS FOR %s@'%%'", (tenant.user,))]
    assert grants and all(grant.startswith("GRANT USAGE ON *.*") for grant in grants), grants
    [record] = TenantMove.objects.filter(tenant_id=tenant.id)
    assert (record.status, record.step, record.source, record.target) == ("done", "retire", "default", two_servers)
    assert record.verified["table test_v2_animal"].startswith("rows=3 ")
    assert "view test_v2_animal_stats" in record.verified
    entry = AuditEntry.objects.filter(action="tenant.move").get()
    assert entry.source == AuditEntry.Source.COMMAND and entry.detail["target"] == two_servers


@pytest.mark.mariadb
@pytest.mark.django_db(transaction=True)
def test_drop_source_backs_up_the_source_then_drops_its_database_and_user(
    two_servers, movable, tenant_client, settings, tmp_path
):
    settings.BACKUP_DIR = tmp_path / "backups"
    tenant = movable()
    assert tenant_client(tenant).post(f"/{tenant.id}/test/v1/animals", {"name": "Rex"}).status_code == 201
    move(tenant.name, "--to", two_servers)
    assert tenant.name in databases(DEFAULT_SERVER)  # kept until asked

    out = move(tenant.name, "--drop-source")

    assert f"{tenant.name}: source database on default dropped (backup: " in out
    assert tenant.name not in databases(DEFAULT_SERVER)
    assert not query(DEFAULT_SERVER, "SELECT 1 FROM mysql.user WHERE User = %s", (tenant.user,))
    [backup] = (tmp_path / "backups" / tenant.name).iterdir()
    assert b"Rex" in __import__("gzip").decompress(backup.read_bytes())
    assert TenantMove.objects.get(tenant_id=tenant.id).source_dropped_at is not None
    # The tenant itself is untouched on db2.
    assert animals_on(two_servers, tenant) == ["Rex"]
    with pytest.raises(CommandError, match="no kept source database"):
        move(tenant.name, "--drop-source")


@pytest.mark.mariadb
@pytest.mark.django_db(transaction=True)
def test_on_the_target_the_tenant_user_reaches_its_own_database_only(two_servers, movable):
    tenant, other = movable(), movable()
    move(other.name, "--to", two_servers)
    move(tenant.name, "--to", two_servers)
    cfg = server_config(two_servers)
    password = engine().tenant_settings(
        __import__("django.conf").conf.settings.M3SAAS_CONFIG,
        name=tenant.name,
        user=tenant.user,
        password=tenant.password,
        server=cfg,
    )["PASSWORD"]
    conn = MySQLdb.connect(host=cfg.host, port=cfg.port, user=tenant.user, password=password, database=tenant.name)
    try:
        with conn.cursor() as cur:
            cur.execute("SHOW DATABASES")
            assert {row[0] for row in cur.fetchall()} == {tenant.name, "information_schema"}
            with pytest.raises(MySQLdb.OperationalError) as denied:
                cur.execute(f"SELECT * FROM `{other.name}`.test_v1_animal")
            assert denied.value.args[0] == 1142
    finally:
        conn.close()


@pytest.mark.mariadb
@pytest.mark.django_db(transaction=True)
def test_a_copy_that_differs_fails_the_move_and_the_tenant_stays_on_its_source(two_servers, movable, tenant_client):
    tenant = movable()
    client = tenant_client(tenant)
    assert client.post(f"/{tenant.id}/test/v1/animals", {"name": "Rex"}).status_code == 201

    def tamper(step: str) -> None:
        if step == TenantMove.Step.VERIFY:  # the copy is made: one more row on the target only
            query(two_servers, f"INSERT INTO `{tenant.name}`.test_v1_animal (name) VALUES ('intruder')")

    with pytest.raises(MoveVerificationError, match="differs from the source"):
        tenant_move(tenant=tenant_info_fresh(tenant_id=tenant.id), target=two_servers, on_step=tamper)

    row = Tenant.objects.get(pk=tenant.id)
    assert (row.server_name, row.moving) == (DEFAULT_SERVER, False)
    record = TenantMove.objects.get(tenant_id=tenant.id)
    assert (record.status, record.step) == ("failed", "verify") and "table test_v1_animal" in record.error
    assert tenant.name not in databases(two_servers)  # this move made the copy: dropped again
    # The freeze ended this process's session too: a request would reconnect (CONN_HEALTH_CHECKS),
    # which Django's test client skips.
    connections[tenant.alias].close()
    # Served from the source, reads and writes.
    assert client.post(f"/{tenant.id}/test/v1/animals", {"name": "Tom"}).status_code == 201
    assert [a["name"] for a in client.get(f"/{tenant.id}/test/v1/animals").json()] == ["Rex", "Tom"]


@pytest.mark.mariadb
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("nowhere", "No database server named 'nowhere'"),
        ("default", "is already on server 'default'"),
        ("db2", "server 'db2' is closed"),
    ],
    ids=["unknown", "same", "closed"],
)
def test_a_refused_target_is_a_one_line_error_and_changes_nothing(two_servers, movable, target, message):
    tenant = movable()
    servers_sync()
    DatabaseServer.objects.filter(name=two_servers).update(state=DatabaseServer.State.CLOSED)
    with pytest.raises(CommandError) as refused:
        move(tenant.name, "--to", target)
    assert message in str(refused.value) and "\n" not in str(refused.value)
    assert Tenant.objects.get(pk=tenant.id).server_name == DEFAULT_SERVER
    assert not TenantMove.objects.exists()
    assert tenant.name not in databases(two_servers)


@pytest.mark.mariadb
@pytest.mark.django_db(transaction=True)
def test_all_from_drains_a_server_carrying_on_past_a_failure(two_servers, movable, tenant_client):
    tenants = [movable() for _ in range(3)]
    for tenant in tenants:
        assert tenant_client(tenant).post(f"/{tenant.id}/test/v1/animals", {"name": tenant.name}).status_code == 201
    broken = tenants[1]
    # A database of that name on db2 that is not the tenant's: its move must fail, the others go on.
    query(two_servers, f"CREATE DATABASE `{broken.name}`")
    query(two_servers, f"CREATE TABLE `{broken.name}`.stray (x INT)")
    out, err = io.StringIO(), io.StringIO()
    try:
        with pytest.raises(CommandError, match=f"1 tenant\\(s\\) not moved off default: {broken.name}"):
            call_command("move_tenant", "--all-from", "default", stdout=out, stderr=err)
    finally:
        query(two_servers, f"DROP DATABASE IF EXISTS `{broken.name}`")
    assert "default: draining, 3 tenant(s) to move" in out.getvalue()
    assert "default: 2 moved, 1 failed" in out.getvalue()
    assert f"{broken.name}: FAILED: " in err.getvalue() and "no owner mark" in err.getvalue()
    assert DatabaseServer.objects.get(name="default").state == DatabaseServer.State.DRAINING
    for tenant in tenants:
        expected = DEFAULT_SERVER if tenant is broken else two_servers
        assert Tenant.objects.get(pk=tenant.id).server_name == expected
        connections[tenant.alias].close()  # ended by the freeze (see the test of a failed verification)
        assert [a["name"] for a in tenant_client(tenant).get(f"/{tenant.id}/test/v1/animals").json()] == [tenant.name]
    assert AuditEntry.objects.filter(action="tenant.move").count() == 3
