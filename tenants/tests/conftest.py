"""Fixtures of the tenants tests."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any

import pytest
from django.db.backends.signals import connection_created

from m3saas.tenancy.info import TenantInfo


@pytest.fixture
def drop_new_tenants(db: None) -> Iterator[None]:
    """Drop the databases of every tenant the test registered (outside `make_tenant` too)."""
    yield
    from tenants.models import Tenant
    from tenants.selectors import tenant_info_from_row
    from tenants.services import tenant_database_drop

    for row in Tenant.objects.all():
        try:
            info = tenant_info_from_row(row)
        except Exception:
            info = TenantInfo(id=row.id, name=row.name, user=row.user, password=row.password)
        tenant_database_drop(tenant=info)


@pytest.fixture
def opened() -> Iterator[set[str]]:
    """The aliases of the database connections opened while the test runs."""
    aliases: set[str] = set()

    def seen(sender: Any, connection: Any, **kwargs: Any) -> None:
        aliases.add(connection.alias)

    connection_created.connect(seen, weak=False)
    yield aliases
    connection_created.disconnect(seen)


@pytest.fixture
def movable(two_servers: str, make_tenant: Any) -> Iterator[Callable[..., TenantInfo]]:
    """`movable(**make_tenant options)`: a ready tenant on the default server whose databases are
    dropped on both servers afterwards (wherever a move left them)."""
    made: list[TenantInfo] = []

    from m3saas.servers import DEFAULT_SERVER
    from tenants.models import DatabaseServer
    from tenants.servers import servers_sync

    servers_sync()

    def make(**options: Any) -> TenantInfo:
        # On the default server, whatever placement would choose (db2 is the emptier one).
        options.setdefault("server", DatabaseServer.objects.get(name=DEFAULT_SERVER))
        tenant = make_tenant(**options)
        made.append(tenant)
        return tenant

    yield make
    from m3saas.engines import engine

    for tenant in made:
        for server in (DEFAULT_SERVER, two_servers):
            engine().database_drop(replace(tenant, server=server))
