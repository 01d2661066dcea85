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


def migrations_of(tenant: TenantInfo) -> int:
    """How many migrations a fresh database of `tenant` gets (the platform's and its modules')."""
    from django.db.migrations.loader import MigrationLoader

    graph = MigrationLoader(None, ignore_no_migrations=True).graph
    return sum(1 for app, _ in graph.nodes if app in tenant.app_labels)
