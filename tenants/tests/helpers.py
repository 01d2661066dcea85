"""Helpers shared by the migration tests: table listing, breaking and repairing a tenant database."""

from __future__ import annotations

import io
from typing import Any

import MySQLdb
from django.db import connections

from m3saas.engines import engine
from m3saas.servers import server_config
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


# --- several servers (MariaDB pass): read a server with its admin account -------------------


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
    return [row[0] for row in query(server, f"SELECT name FROM `{tenant.name}`.`{table}` ORDER BY id")]
