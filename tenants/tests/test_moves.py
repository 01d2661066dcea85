"""Moving a tenant to another server (`manage.py move_tenant`), on a real second MariaDB (`db2`).

What an operator and the tenant's callers see: rows and views intact and served from the
target, the source kept then dropped after a backup, the target's grants, a verification that
fails, writes refused (503, never lost) while it moves, other tenants untouched, a drain.
Killed moves: tests/test_moves_killed.py.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any

import MySQLdb
import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from m3saas.audit.models import AuditEntry
from m3saas.engines import engine
from m3saas.servers import DEFAULT_SERVER, server_config
from m3saas.tenancy.info import TenantInfo
from tenants.models import DatabaseServer, Tenant, TenantMove
from tenants.moves import MoveVerificationError, tenant_move
from tenants.selectors import tenant_info_fresh
from tenants.servers import servers_sync

mariadb = [pytest.mark.mariadb, pytest.mark.django_db(transaction=True)]


def admin(server: str) -> Any:
    cfg = server_config(server)
    return MySQLdb.connect(host=cfg.host, port=cfg.port, user=cfg.user, password=cfg.password, autocommit=True)


def query(server: str, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    conn = admin(server)
    try:
        with conn.cursor() as cur:
            cur.execute(sql, params)
            return list(cur.fetchall())
    finally:
        conn.close()


def databases(server: str) -> set[str]:
    return {row[0] for row in query(server, "SHOW DATABASES")}


def animals_on(server: str, tenant: TenantInfo, table: str = "test_v1_animal") -> list[str]:
    return [row[0] for row in query(server, f"SELECT name FROM `{tenant.name}`.`{table}` ORDER BY id")]  # noqa: S608


def move(*args: str) -> str:
    out = io.StringIO()
    call_command("move_tenant", *args, stdout=out, stderr=io.StringIO())
    return out.getvalue()


@pytest.fixture
def movable(two_servers: str, make_tenant: Any) -> Iterator[Callable[..., TenantInfo]]:
    """`movable(**make_tenant options)`: a ready tenant on the default server whose databases are
    dropped on both servers afterwards (wherever a move left them)."""
    made: list[TenantInfo] = []

    def make(**options: Any) -> TenantInfo:
        tenant = make_tenant(**options)
        made.append(tenant)
        return tenant

    yield make
    for tenant in made:
        for server in (DEFAULT_SERVER, two_servers):
            engine().database_drop(replace(tenant, server=server))


@pytest.mark.parametrize("_", [None], ids=["one server"])
@pytest.mark.django_db
def test_with_one_server_move_tenant_says_so_in_one_line(make_tenant, _):
    """SQLite (one implicit server) and a MariaDB config without tenants.servers alike."""
    tenant = make_tenant()
    with pytest.raises(CommandError) as refused:
        call_command("move_tenant", tenant.name, "--to", "db2")
    assert "there is no other server to move a tenant to" in str(refused.value)
    assert "\n" not in str(refused.value)
    assert Tenant.objects.get(pk=tenant.id).server_name == DEFAULT_SERVER


@pytest.mark.mariadb
@pytest.mark.django_db(transaction=True)
def test_a_moved_tenant_keeps_its_rows_and_views_and_is_served_from_the_target(
    two_servers, movable, tenant_client
):
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

