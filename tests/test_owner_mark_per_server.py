"""A tenant's owner mark is checked on the server it is served from: a process that verified it
on one server checks it again when the tenant points at another (after a move, or a row changed
by hand), so a database there that is not the tenant's is never served."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from m3saas.engines import tenant_db_password
from m3saas.servers import DEFAULT_SERVER
from m3saas.tenancy.connections import tenant_connection_register
from m3saas.tenancy.ownership import TenantUnavailableError, tenant_owner_verify
from tenants.models import DatabaseServer
from tenants.servers import servers_sync
from tenants.tests.helpers import query

pytestmark = pytest.mark.mariadb


def test_a_tenant_pointed_at_another_server_is_checked_again_there(two_servers: str, make_tenant: Any):
    servers_sync()
    tenant = make_tenant(server=DatabaseServer.objects.get(name=DEFAULT_SERVER))
    tenant_connection_register(tenant)
    tenant_owner_verify(tenant)  # its own database, on the default server: verified

    # A database of the same name on db2, reachable by the tenant's account but not marked as its own.
    query(two_servers, f"CREATE DATABASE `{tenant.name}`")
    try:
        password = tenant_db_password(tenant.password)
        query(two_servers, "CREATE USER IF NOT EXISTS %s@'%%' IDENTIFIED BY %s", (tenant.user, password))
        query(two_servers, f"GRANT ALL ON `{tenant.name}`.* TO %s@'%%'", (tenant.user,))
        elsewhere = replace(tenant, server=two_servers)
        tenant_connection_register(elsewhere)
        with pytest.raises(TenantUnavailableError):
            tenant_owner_verify(elsewhere)
    finally:
        query(two_servers, f"DROP DATABASE IF EXISTS `{tenant.name}`")
        query(two_servers, "DROP USER IF EXISTS %s@'%%'", (tenant.user,))
        tenant_connection_register(tenant)
