"""The database servers on both engines: the config's `tenants.servers`, the implicit single
server, placement's refusals, and the alias that follows a tenant's server."""

from __future__ import annotations

import io
from dataclasses import replace
from typing import Any

import pytest
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connections

from m3saas.conf import ConfigError, ServerConfig, parse_config
from m3saas.servers import DEFAULT_SERVER, ServerUnknownError, server_config
from m3saas.tenancy.connections import tenant_alias_server, tenant_connection_register, tenant_connection_unregister
from m3saas.tenancy.info import TenantInfo
from tenants.models import DatabaseServer, Tenant
from tenants.servers import ServerUnavailableError, server_list, servers_sync
from tenants.services import tenant_create

MYSQL = {"host": "db1", "port": 3306, "database": "master", "user": "admin", "password": "pw"}


def _parse(servers: Any, **database: Any) -> Any:
    return parse_config("cfg.json", {"tenants": {"database": {**MYSQL, **database}, "servers": servers}})


def test_servers_are_read_from_the_config():
    config = _parse({"db2": {"host": "db2", "user": "admin2", "password": "pw2", "capacity": 300}})
    assert config.servers == (
        ServerConfig(name="db2", host="db2", port=3306, user="admin2", password="pw2", capacity=300),
    )
    assert config.default_server == ServerConfig(
        name=DEFAULT_SERVER, host="db1", port=3306, user="admin", password="pw"
    )


@pytest.mark.parametrize(
    ("servers", "database", "message"),
    [
        ({"db2": {"user": "a", "password": ""}}, {}, "cfg.json: key 'tenants.servers.db2.host' is missing"),
        ({"db2": {"host": "h", "password": ""}}, {}, "key 'tenants.servers.db2.user' is missing"),
        ({"db2": {"host": "h", "user": "a"}}, {}, "key 'tenants.servers.db2.password' is missing"),
        ({"Db 2": {"host": "h", "user": "a", "password": ""}}, {}, "key 'tenants.servers.Db 2' is not a server name"),
        ({"default": {"host": "h", "user": "a", "password": ""}}, {}, "'tenants.servers.default' is reserved"),
        ({"db2": {"host": "db1", "user": "a", "password": ""}}, {}, "names the same server as 'default'"),
        ({"db2": {"host": "h", "port": 70000, "user": "a", "password": ""}}, {}, "must be a TCP port"),
        ({"db2": {"host": "h", "user": "a", "password": "", "capacity": "lots"}}, {}, "must be an integer"),
        # Text that str.isdigit() takes but int() refuses, and numbers the server row cannot hold.
        ({"db2": {"host": "h", "user": "a", "password": "", "capacity": "²"}}, {}, "must be an integer, not '²'"),
        ({"db2": {"host": "h", "port": "①", "user": "a", "password": ""}}, {}, "must be an integer, not '①'"),
        ({"db2": {"host": "h", "port": "--5", "user": "a", "password": ""}}, {}, "must be an integer, not '--5'"),
        ({"db2": {"host": "h", "user": "a", "password": "", "capacity": 10**30}}, {}, "to 2147483647, not 1000"),
        ({"db2": {"host": "h", "user": "a", "password": "", "capacity": "-1"}}, {}, "must be 0 (no limit) to"),
        ({"db2": {"host": "h", "port": 0, "user": "a", "password": ""}}, {}, "must be a TCP port, not 0"),
        ({"db2": "h"}, {}, "key 'tenants.servers.db2' must be an object"),
        ({"db2": {"host": "h", "user": "a", "password": ""}}, {"backend": "sqlite"}, "needs the 'mysql' backend"),
    ],
)
def test_a_bad_server_declaration_stops_start_up_with_one_line(servers: Any, database: Any, message: str):
    with pytest.raises(ConfigError) as failed:
        _parse(servers, **database)
    assert message in str(failed.value)
    assert "\n" not in str(failed.value)


def test_an_unknown_server_name_says_where_to_declare_it():
    assert server_config(None) == server_config(DEFAULT_SERVER) == settings.M3SAAS_CONFIG.default_server
    with pytest.raises(ServerUnknownError, match=r"tenants\.servers\.nosuch"):
        server_config("nosuch")


@pytest.mark.django_db
def test_the_single_server_takes_every_tenant_until_full():
    servers_sync()
    assert [s.name for s in server_list()] == [DEFAULT_SERVER]
    DatabaseServer.objects.filter(name=DEFAULT_SERVER).update(capacity=2)
    for name in ("srvone1", "srvone2"):
        assert tenant_create(name=name, user=name, password="pw", provision=False).server_name == DEFAULT_SERVER
    with pytest.raises(ServerUnavailableError, match=r"full \(2/2 tenants\)"):
        tenant_create(name="srvone3", user="srvone3", password="pw", provision=False)
    assert not Tenant.objects.filter(name="srvone3").exists()


@pytest.mark.django_db
def test_servers_command_and_health_report_the_implicit_server(client: Any):
    out = io.StringIO()
    call_command("servers", stdout=out)
    row = out.getvalue().splitlines()[1].split()
    assert row[:5] == [DEFAULT_SERVER, "open", "0", "unlimited", "unlimited"]
    assert row[-1] == "yes"
    body = client.get("/health").json()
    assert body["servers"] == {DEFAULT_SERVER: "ok"}


@pytest.mark.django_db
def test_servers_command_fails_on_a_server_without_credentials_even_without_checks():
    servers_sync()
    DatabaseServer.objects.create(name="srvnocreds", host="10.0.0.9", port=3306)
    out, err = io.StringIO(), io.StringIO()
    with pytest.raises(CommandError, match="srvnocreds"):
        call_command("servers", "--no-check", stdout=out, stderr=err)
    rows = {line.split()[0]: line.split()[-1] for line in out.getvalue().splitlines()[1:-1]}
    assert rows == {DEFAULT_SERVER: "checked", "srvnocreds": "NO"}  # "not checked" / "NO"
    assert "tenants.servers.srvnocreds" in err.getvalue()


def test_a_tenant_switched_to_another_server_registers_again(settings: Any):
    """What moving a tenant relies on: the next registration after `Tenant.server` changed (and the
    cache was invalidated) makes a new entry pointing at the new server."""
    base = settings.M3SAAS_CONFIG.default_server
    other = replace(base, name="srvother", host=base.host or "elsewhere", port=base.port + 1)
    settings.M3SAAS_CONFIG = replace(settings.M3SAAS_CONFIG, servers=(other,))
    tenant = TenantInfo(id=990001, name="srvswitch", user="srvswitch", password=_token())
    alias = tenant_connection_register(tenant)
    try:
        before = connections.settings[alias]
        assert tenant_alias_server(alias) == DEFAULT_SERVER
        assert tenant_connection_register(tenant) == alias and connections.settings[alias] is before
        tenant_connection_register(replace(tenant, server="srvother"))
        after = connections.settings[alias]
        assert after is not before
        assert tenant_alias_server(alias) == "srvother"
        if settings.M3SAAS_CONFIG.is_mysql:
            assert (after["HOST"], after["PORT"]) == (other.host, str(other.port))
    finally:
        tenant_connection_unregister(alias)


def _token() -> str:
    from m3saas.passwords import password_encrypt

    return password_encrypt("secret")
