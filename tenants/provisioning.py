"""Create and drop tenant databases and users, per engine. Idempotent.

MySQL/MariaDB statements run on a connection of their own with the master's credentials,
outside any Django transaction (DDL commits implicitly there).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any, Protocol

from django.conf import settings

from m3saas.conf import Config, get_config
from m3saas.exceptions import ProvisioningError
from m3saas.identifiers import grant_pattern, quote_mysql_identifier, validate_user_name
from m3saas.tenancy.connections import tenant_database_settings, tenant_db_password
from m3saas.tenancy.context import TenantInfo


class Provisioner(Protocol):
    def create(self, tenant: TenantInfo) -> None: ...

    def drop(self, tenant: TenantInfo) -> None: ...

    def exists(self, tenant: TenantInfo) -> bool: ...


class MySQLProvisioner:
    """A database with the configured collation, a user with a salted-hash password, one grant."""

    def __init__(self, config: Config) -> None:
        self.config = config

    def _connect(self) -> Any:
        import MySQLdb

        db = self.config.database
        try:
            return MySQLdb.connect(
                host=db.host,
                port=db.port,
                user=db.user,
                password=db.password,
                charset=self.config.charset,
                multi_statements=False,
            )
        except MySQLdb.Error as exc:
            raise ProvisioningError(f"Cannot reach the database server {db.host}:{db.port}: {exc}") from exc

    @property
    def user_host(self) -> str:
        return str(settings.TENANT_DB_USER_HOST)

    def create(self, tenant: TenantInfo) -> None:
        validate_user_name(tenant.user)
        database = quote_mysql_identifier(tenant.name)
        conn = self._connect()
        try:
            with conn.cursor() as cur:
                cur.execute(
                    f"CREATE DATABASE IF NOT EXISTS {database} "
                    f"CHARACTER SET {self.config.charset} COLLATE {self.config.collation}"
                )
                password = tenant_db_password(tenant.password)
                cur.execute("CREATE USER IF NOT EXISTS %s@%s IDENTIFIED BY %s", (tenant.user, self.user_host, password))
                # Keeps the password in step when the tenant's password or the salt changed.
                cur.execute("ALTER USER %s@%s IDENTIFIED BY %s", (tenant.user, self.user_host, password))
                cur.execute(
                    f"GRANT ALL PRIVILEGES ON {grant_pattern(tenant.name)}.* TO %s@%s", (tenant.user, self.user_host)
                )
        finally:
            conn.close()

    def drop(self, tenant: TenantInfo) -> None:
        validate_user_name(tenant.user)
        conn = self._connect()
        try:
            with conn.cursor() as cur:
                cur.execute(f"DROP DATABASE IF EXISTS {quote_mysql_identifier(tenant.name)}")
                cur.execute("DROP USER IF EXISTS %s@%s", (tenant.user, self.user_host))
        finally:
            conn.close()

    def exists(self, tenant: TenantInfo) -> bool:
        conn = self._connect()
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT 1 FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = %s", (tenant.name,))
                return cur.fetchone() is not None
        finally:
            conn.close()


class SQLiteProvisioner:
    """One file per tenant under `var/tenants/`."""

    def _path(self, tenant: TenantInfo) -> Path:
        name = tenant_database_settings(name=tenant.name, user=tenant.user, password=tenant.password)["NAME"]
        return Path(name)

    def create(self, tenant: TenantInfo) -> None:
        path = self._path(tenant)
        path.parent.mkdir(parents=True, exist_ok=True)
        sqlite3.connect(path).close()

    def drop(self, tenant: TenantInfo) -> None:
        path = self._path(tenant)
        for suffix in ("", "-wal", "-shm", "-journal"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)

    def exists(self, tenant: TenantInfo) -> bool:
        return self._path(tenant).exists()


def provisioner() -> Provisioner:
    config = get_config()
    return MySQLProvisioner(config) if config.is_mysql else SQLiteProvisioner()
