"""Helpers shared by the migration tests: table listing, breaking and repairing a tenant database."""

from __future__ import annotations

import io

from django.db import connections

from m3saas.engines import engine
from m3saas.tenancy.connections import tenant_connection_register
from m3saas.tenancy.info import TenantInfo


def tables(alias: str) -> set[str]:
    with connections[alias].cursor() as cursor:
        return set(connections[alias].introspection.table_names(cursor))


def break_tenant(tenant: TenantInfo, table: str = "test_v1_animal") -> None:
    """Create the database with a stray `table` in it, so the migration creating it fails."""
    engine().database_create(tenant)
    tenant_connection_register(tenant)
    with connections[tenant.alias].cursor() as cursor:
        cursor.execute(f"CREATE TABLE {table} (stray INTEGER)")
        cursor.execute(f"INSERT INTO {table} (stray) VALUES (42)")


def repair_tenant(tenant: TenantInfo, table: str = "test_v1_animal") -> None:
    with connections[tenant.alias].cursor() as cursor:
        cursor.execute(f"DROP TABLE {table}")


class TTY(io.StringIO):
    def isatty(self) -> bool:
        return True
