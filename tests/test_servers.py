"""Tenants on several database servers: a real second MariaDB (`second_mariadb`) as `db2`.

Placement, serving, isolation, backups and a server that is down, as an operator and a
tenant's callers see them.
"""

from __future__ import annotations

from typing import Any

import MySQLdb
import pytest
from django.conf import settings

from m3saas.servers import DEFAULT_SERVER, server_config
from m3saas.tenancy.context import use_tenant
from modules.test.v1.models import Animal
from tenants.models import DatabaseServer
from tenants.servers import servers_sync

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
    port = int(settings.DATABASES[tenant.alias]["PORT"])
    assert port == server_config(two_servers).port != server_config(DEFAULT_SERVER).port
