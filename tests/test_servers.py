"""Tenants on several database servers: a real second MariaDB (`second_mariadb`) as `db2`.

Placement, serving, isolation, backups and a server that is down, as an operator and a
tenant's callers see them.
"""

from __future__ import annotations

import io
import json
import re
import socket
import time
import uuid
from dataclasses import replace
from typing import Any

import MySQLdb
import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connections
from django.test import override_settings
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from m3saas.conf import ServerConfig
from m3saas.engines import tenant_db_password
from m3saas.servers import DEFAULT_SERVER, server_config
from m3saas.tenancy.context import use_tenant
from m3saas.tenancy.each import tenant_connections_close
from modules.test.v1.models import Animal
from tenants.backups import backup_create, backup_restore, backup_target_tenant
from tenants.models import DatabaseServer, Tenant
from tenants.selectors import tenant_info_fresh
from tenants.servers import ServerNotFoundError, ServerUnavailableError, servers_sync
from tenants.services import tenant_create, tenant_database_drop
from tests.tcp_proxy import TcpProxy
from tests.test_health import dockerfile_health_check_run

pytestmark = [pytest.mark.mariadb, pytest.mark.django_db(transaction=True)]


def _databases(server: str) -> set[str]:
    """The databases on `server`, read with its admin account."""
    cfg = server_config(server)
    conn = MySQLdb.connect(host=cfg.host, port=cfg.port, user=cfg.user, password=cfg.password)
    try:
        with conn.cursor() as cur:
            cur.execute("SHOW DATABASES")
            return {row[0] for row in cur.fetchall()}
    finally:
        conn.close()


@pytest.fixture
def operator_client() -> APIClient:
    user = User.objects.create_user(f"op_{uuid.uuid4().hex[:8]}", password="pw-operator-123", is_staff=True)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
    return client


def _db2_row(name: str) -> DatabaseServer:
    servers_sync()
    return DatabaseServer.objects.get(name=name)


def test_a_tenant_on_the_second_server_is_served_from_it(two_servers: str, make_tenant: Any, tenant_client: Any):
    tenant = make_tenant(server=_db2_row(two_servers))
    assert tenant.server == two_servers
    client = tenant_client(tenant)
    created = client.post(f"/{tenant.id}/test/v1/animals", {"name": "far-away-cat"})
    assert created.status_code == 201, created.content
    assert [a["name"] for a in client.get(f"/{tenant.id}/test/v1/animals").json()] == ["far-away-cat"]
    # Its database is on db2, not on the default server.
    assert tenant.name in _databases(two_servers)
    assert tenant.name not in _databases(DEFAULT_SERVER)
    with use_tenant(tenant):
        assert list(Animal.objects.values_list("name", flat=True)) == ["far-away-cat"]
    port = int(connections.settings[tenant.alias]["PORT"])
    assert port == server_config(two_servers).port != server_config(DEFAULT_SERVER).port


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _capacities(**capacities: int) -> None:
    servers_sync()
    for name, capacity in capacities.items():
        DatabaseServer.objects.filter(name=name).update(capacity=capacity)


def _new(name: str, **options: Any) -> Tenant:
    return tenant_create(name=name, user=name, password="secret", provision=False, **options)


def test_placement_takes_the_server_with_most_free_capacity(two_servers: str):
    _capacities(default=3, db2=2)
    placed = [_new(f"srvplace{i}").server_name for i in range(5)]
    # free (default, db2): 3,2 → default; 2,2 → fewer tenants: db2; 2,1 → default; 1,1 → db2; 1,0 → default
    assert placed == ["default", "db2", "default", "db2", "default"]
    with pytest.raises(ServerUnavailableError) as refused:
        _new("srvplacefull")
    assert "full" in refused.value.message
    assert not Tenant.objects.filter(name="srvplacefull").exists()


def test_closed_and_draining_servers_are_never_chosen(two_servers: str):
    servers_sync()
    DatabaseServer.objects.filter(name=two_servers).update(state=DatabaseServer.State.CLOSED)
    assert {_new(f"srvclosed{i}").server_name for i in range(3)} == {DEFAULT_SERVER}
    with pytest.raises(ServerUnavailableError, match="closed"):
        _new("srvclosednamed", server=two_servers)
    DatabaseServer.objects.filter(name=DEFAULT_SERVER).update(state=DatabaseServer.State.DRAINING)
    with pytest.raises(ServerUnavailableError, match="draining"):
        _new("srvnoneleft")
    assert not Tenant.objects.filter(name__in=["srvclosednamed", "srvnoneleft"]).exists()


def test_a_server_missing_from_the_config_is_reported_and_never_chosen(two_servers: str, settings: Any):
    servers_sync()
    DatabaseServer.objects.create(name="db9", host="10.0.0.9", port=3306)
    DatabaseServer.objects.filter(name=DEFAULT_SERVER).update(state=DatabaseServer.State.CLOSED)
    DatabaseServer.objects.filter(name=two_servers).update(state=DatabaseServer.State.CLOSED)
    with pytest.raises(ServerUnavailableError, match=r"db9.*no credentials"):
        _new("srvdb9")
    with pytest.raises(ServerNotFoundError):
        _new("srvnosuch", server="nosuch")
    out, err = io.StringIO(), io.StringIO()
    with pytest.raises(CommandError, match="db9"):
        call_command("servers", stdout=out, stderr=err)
    assert "not in" in err.getvalue() and "tenants.servers.db9" in err.getvalue()


def test_operator_api_places_and_filters_by_server(two_servers: str, operator_client: Any):
    _capacities(db2=1)
    body = {"name": "srvapi1", "user": "srvapi1", "password": "pw", "server": two_servers}
    created = operator_client.post("/operator/v1/tenants", body, format="json")
    assert created.status_code == 201, created.content
    assert created.json()["server"] == two_servers
    full = operator_client.post("/operator/v1/tenants", {**body, "name": "srvapi2", "user": "srvapi2"}, format="json")
    assert full.status_code == 409
    assert full.json()["error"]["code"] == "no_server_available"
    unknown = operator_client.post(
        "/operator/v1/tenants", {**body, "name": "srvapi3", "user": "srvapi3", "server": "nosuch"}, format="json"
    )
    assert unknown.status_code == 400
    assert unknown.json()["error"]["code"] == "server_not_found"
    assert not Tenant.objects.filter(name__in=["srvapi2", "srvapi3"]).exists()
    listed = operator_client.get(f"/operator/v1/tenants?server={two_servers}").json()["results"]
    assert [t["name"] for t in listed] == ["srvapi1"]
    assert "srvapi1" in _databases(two_servers)
    tenant_database_drop(tenant=tenant_info_fresh(tenant_id=created.json()["id"]))


def test_a_tenant_user_reaches_nothing_on_the_other_server(two_servers: str, make_tenant: Any):
    far = make_tenant(server=_db2_row(two_servers))
    near = make_tenant(server=_db2_row(DEFAULT_SERVER))
    for tenant, other in ((far, DEFAULT_SERVER), (near, two_servers)):
        cfg = server_config(other)
        with pytest.raises(MySQLdb.OperationalError) as refused:
            MySQLdb.connect(
                host=cfg.host, port=cfg.port, user=tenant.user, password=tenant_db_password(tenant.password)
            ).close()
        # Access denied: the account does not exist there (MariaDB answers 1045, or 1698 when the
        # handshake ends in its no-password branch, seen under load).
        assert refused.value.args[0] in (1045, 1698)
    # On its own server it logs in, and sees its own database only.
    cfg = server_config(two_servers)
    conn = MySQLdb.connect(host=cfg.host, port=cfg.port, user=far.user, password=tenant_db_password(far.password))
    try:
        with conn.cursor() as cur:
            cur.execute("SHOW DATABASES")
            assert {row[0] for row in cur.fetchall()} - {"information_schema"} == {far.name}
    finally:
        conn.close()


def test_backup_and_restore_of_a_tenant_on_the_second_server(two_servers: str, make_tenant: Any, tmp_path: Any):
    tenant = make_tenant(server=_db2_row(two_servers))
    with use_tenant(tenant):
        Animal.objects.create(name="kept")
    target = backup_target_tenant(tenant=tenant)
    result = backup_create(target=target, directory=tmp_path)
    with use_tenant(tenant):
        Animal.objects.all().delete()
        Animal.objects.create(name="after-the-backup")
    with override_settings(BACKUP_DIR=tmp_path):
        backup_restore(target=target, backup=result.backup)
    with use_tenant(tenant):
        assert list(Animal.objects.values_list("name", flat=True)) == ["kept"]
    assert tenant.name in _databases(two_servers)
    assert tenant.name not in _databases(DEFAULT_SERVER)


def _server_out(refused: Any, client: Any, *, code: str, server: str) -> Any:
    """The tenant's request was refused 503 `code`, and `/health` is 503 naming `server`; its response."""
    assert refused.status_code == 503
    assert refused.json()["error"]["code"] == code
    health = client.get("/health")
    assert health.status_code == 503
    assert health.json()["servers"] == {DEFAULT_SERVER: "ok", server: "unavailable"}
    assert health.json()["error"]["message"] == f"Unavailable: server {server}."
    return health


def test_one_server_down_the_others_tenants_keep_answering(
    two_servers: str, make_tenant: Any, tenant_client: Any, client: Any, settings: Any
):
    near = make_tenant(server=_db2_row(DEFAULT_SERVER))
    far = make_tenant(server=_db2_row(two_servers))
    near_client, far_client = tenant_client(near), tenant_client(far)
    assert far_client.get(f"/{far.id}/test/v1/animals").status_code == 200
    assert client.get("/health").status_code == 200
    up = server_config(two_servers)
    # db2 goes away: the config now points it at a port nothing listens on.
    down = replace(server_config(two_servers), port=_closed_port())
    settings.M3SAAS_CONFIG = replace(settings.M3SAAS_CONFIG, servers=(down,))
    assert near_client.get(f"/{near.id}/test/v1/animals").status_code == 200
    refused = far_client.get(f"/{far.id}/test/v1/animals")
    health = _server_out(refused, client, code="database_unavailable", server=two_servers)
    assert str(down.port) not in health.content.decode()
    out, err = io.StringIO(), io.StringIO()
    with pytest.raises(CommandError, match=two_servers):
        call_command("servers", stdout=out, stderr=err)
    assert re.search(rf"^{two_servers}\s+open\s+1\s.*NO$", out.getvalue(), re.MULTILINE)
    settings.M3SAAS_CONFIG = replace(settings.M3SAAS_CONFIG, servers=(up,))  # back
    assert far_client.get(f"/{far.id}/test/v1/animals").status_code == 200


def test_servers_command_lists_tenants_capacity_state_and_reachability(two_servers: str, make_tenant: Any):
    _capacities(db2=10)
    make_tenant(server=_db2_row(two_servers), provision=False)
    out = io.StringIO()
    call_command("servers", stdout=out)
    lines = out.getvalue().splitlines()
    assert lines[0].split() == ["server", "state", "tenants", "capacity", "free", "address", "reachable"]
    db2 = next(line.split() for line in lines if line.startswith(two_servers))
    assert db2 == [two_servers, "open", "1", "10", "9", server_config(two_servers).address, "yes"]
    assert lines[-1] == "2 server(s), 1 tenant(s)."


def test_seed_places_tenants_on_the_named_server(two_servers: str, settings: Any, tmp_path: Any):
    settings.MASTER_SEEDS_DIR = tmp_path
    (tmp_path / "tenants.json").write_text(
        json.dumps(
            {
                "model": "tenants.tenant",
                "main": [
                    {"id": 9101, "name": "srvseed1", "user": "srvseed1", "password": "pw", "server": two_servers},
                    {"id": 9102, "name": "srvseed2", "user": "srvseed2", "password": "pw"},
                ],
            }
        )
    )
    settings.AUTO_MIGRATION = False
    call_command("seed", "--server", DEFAULT_SERVER, stdout=io.StringIO())
    assert Tenant.objects.get(name="srvseed1").server_name == two_servers
    assert Tenant.objects.get(name="srvseed2").server_name == DEFAULT_SERVER
    DatabaseServer.objects.filter(name=DEFAULT_SERVER).update(state=DatabaseServer.State.CLOSED)
    (tmp_path / "tenants.json").write_text(
        json.dumps(
            {
                "model": "tenants.tenant",
                "main": [{"id": 9103, "name": "srvseed3", "user": "srvseed3", "password": "pw"}],
            }
        )
    )
    with pytest.raises(CommandError, match="closed"):
        call_command("seed", "--server", DEFAULT_SERVER, stdout=io.StringIO())
    assert not Tenant.objects.filter(name="srvseed3").exists()
    call_command("seed", stdout=io.StringIO())
    assert Tenant.objects.get(name="srvseed3").server_name == two_servers


def test_admin_places_a_new_tenant_on_the_chosen_server_and_filters_by_it(two_servers: str, admin_client: Any):
    servers_sync()
    form = {
        "name": "srvadmin1",
        "user": "srvadmin1",
        "password": "pw",
        "per_day_backups": 1,
        "max_backups": 10,
        "server": two_servers,
        "rate_limit": "",
        "subscriptions-TOTAL_FORMS": 0,
        "subscriptions-INITIAL_FORMS": 0,
    }
    with override_settings(AUTO_MIGRATION=False):
        response = admin_client.post("/admin/tenants/tenant/add/", form)
    assert response.status_code == 302, response.content.decode()[:2000]
    assert Tenant.objects.get(name="srvadmin1").server_name == two_servers
    listing = admin_client.get(f"/admin/tenants/tenant/?server={two_servers}").content.decode()
    assert "srvadmin1" in listing
    assert "srvadmin1" not in admin_client.get(f"/admin/tenants/tenant/?server={DEFAULT_SERVER}").content.decode()
    DatabaseServer.objects.filter(name=two_servers).update(state=DatabaseServer.State.CLOSED)
    with override_settings(AUTO_MIGRATION=False):
        refused = admin_client.post("/admin/tenants/tenant/add/", {**form, "name": "srvadmin2", "user": "srvadmin2"})
    assert refused.status_code == 200
    assert "is closed" in refused.content.decode()
    assert not Tenant.objects.filter(name="srvadmin2").exists()
    servers_page = admin_client.get("/admin/tenants/databaseserver/").content.decode()
    assert two_servers in servers_page and "closed" in servers_page
    status = admin_client.get("/admin/tenants/tenant/status/").content.decode()
    assert server_config(two_servers).address in status


def test_a_blackholed_server_leaves_health_quick_and_the_container_healthy(
    settings: Any, client: Any, live_server: Any
):
    """A server whose address swallows packets: `/health` still answers well within the image's
    4 s health-check timeout (503 naming it), and the image's check, master-only, passes."""
    settings.DB_CONNECT_TIMEOUT = 5
    far = ServerConfig(name="hlthfar", host="10.255.255.1", port=3306, user="root", password="")
    settings.M3SAAS_CONFIG = replace(settings.M3SAAS_CONFIG, servers=(far,))
    started = time.monotonic()
    health = client.get("/health")
    took = time.monotonic() - started
    assert health.status_code == 503
    assert health.json()["servers"] == {DEFAULT_SERVER: "ok", "hlthfar": "unavailable"}
    assert took < 3.5, f"/health took {took:.2f} s"
    check = dockerfile_health_check_run(live_server)
    assert check.returncode == 0, check.stderr


def test_health_logs_in_to_a_server_once_in_a_while(two_servers: str, client: Any, settings: Any):
    """An unauthenticated flood of `/health` does not log in to every server each time."""
    up = server_config(two_servers)
    with TcpProxy((up.host, up.port)) as proxy:
        proxied = replace(up, host="127.0.0.1", port=proxy.port)
        settings.M3SAAS_CONFIG = replace(settings.M3SAAS_CONFIG, servers=(proxied,))
        for _ in range(10):
            health = client.get("/health")
            assert health.status_code == 200
            assert health.json()["servers"] == {DEFAULT_SERVER: "ok", two_servers: "ok"}
        assert proxy.accepted == 1


def test_a_server_dropped_from_the_config_that_holds_tenants_makes_health_503(
    two_servers: str, make_tenant: Any, tenant_client: Any, client: Any, settings: Any
):
    tenant = make_tenant(server=_db2_row(two_servers))
    full = settings.M3SAAS_CONFIG
    settings.M3SAAS_CONFIG = replace(full, servers=())
    try:
        tenant_connections_close()
        refused = tenant_client(tenant).get(f"/{tenant.id}/test/v1/animals")
        _server_out(refused, client, code="server_unknown", server=two_servers)
    finally:
        settings.M3SAAS_CONFIG = full  # the clean-up drops the tenant's database on db2
