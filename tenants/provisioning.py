"""Create and drop tenant databases and users, per engine. Idempotent.

MySQL/MariaDB statements run on a connection of their own with the master's credentials,
outside any Django transaction (DDL commits implicitly there).

A database created here holds an owner mark (table `m3saas_owner`, the tenant id). An existing
database without this tenant's mark is refused: it may be a deleted tenant's data (deleting a
tenant row keeps its database), which a new tenant of the same name must never inherit.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any, Protocol

from django.conf import settings
from django.core.exceptions import ValidationError

from m3saas.conf import Config
from m3saas.exceptions import ProvisioningError
from m3saas.identifiers import grant_pattern, quote_mysql_identifier, validate_not_master, validate_user_name
from m3saas.tenancy.connections import tenant_database_settings, tenant_db_password
from m3saas.tenancy.context import TenantInfo

OWNER_TABLE = "m3saas_owner"


def _refuse_master(tenant: TenantInfo) -> None:
    try:
        validate_not_master(name=tenant.name, user=tenant.user)
    except ValidationError as exc:
        raise ProvisioningError(f"Tenant {tenant.name}: {' '.join(exc.messages)}") from None


def _check_owner(tenant: TenantInfo, owners: list[int] | None) -> None:
    """`owners`: the ids in the database's owner mark, or None when it has no mark."""
    if owners == [tenant.id]:
        return
    if owners is None:
        whose = "was not created by M3SaaS for it (no owner mark)"
    else:
        whose = f"belongs to tenant #{', #'.join(str(o) for o in owners)}"
    raise ProvisioningError(
        f"Database {tenant.name!r} already exists and {whose}: it may hold a deleted tenant's data. "
        "Back it up and drop it, or give the tenant another name."
    )


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
        _refuse_master(tenant)
        validate_user_name(tenant.user)
        database = quote_mysql_identifier(tenant.name)
        conn = self._connect()
        try:
            with conn.cursor() as cur:
                existed = self._database_exists(cur, tenant.name)
                cur.execute(
                    f"CREATE DATABASE IF NOT EXISTS {database} "
                    f"CHARACTER SET {self.config.charset} COLLATE {self.config.collation}"
                )
                if not existed:
                    cur.execute(f"CREATE TABLE IF NOT EXISTS {database}.`{OWNER_TABLE}` (tenant_id BIGINT PRIMARY KEY)")
                    cur.execute(f"INSERT IGNORE INTO {database}.`{OWNER_TABLE}` (tenant_id) VALUES (%s)", (tenant.id,))  # noqa: S608
                _check_owner(tenant, self._owners(cur, tenant.name))
                self._check_user_grants(cur, tenant)
                password = tenant_db_password(tenant.password)
                cur.execute("CREATE USER IF NOT EXISTS %s@%s IDENTIFIED BY %s", (tenant.user, self.user_host, password))
                # Keeps the password in step when the tenant's password or the salt changed.
                cur.execute("ALTER USER %s@%s IDENTIFIED BY %s", (tenant.user, self.user_host, password))
                cur.execute(
                    f"GRANT ALL PRIVILEGES ON {grant_pattern(tenant.name)}.* TO %s@%s", (tenant.user, self.user_host)
                )
        finally:
            conn.close()

    @staticmethod
    def _database_exists(cur: Any, name: str) -> bool:
        cur.execute("SELECT 1 FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = %s", (name,))
        return cur.fetchone() is not None

    @staticmethod
    def _owners(cur: Any, name: str) -> list[int] | None:
        cur.execute(
            "SELECT 1 FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s", (name, OWNER_TABLE)
        )
        if cur.fetchone() is None:
            return None
        cur.execute(f"SELECT tenant_id FROM {quote_mysql_identifier(name)}.`{OWNER_TABLE}` ORDER BY tenant_id")  # noqa: S608
        return [int(row[0]) for row in cur.fetchall()]

    def _check_user_grants(self, cur: Any, tenant: TenantInfo) -> None:
        """An existing account may hold nothing but this tenant's database: never adopt another one."""
        cur.execute("SELECT 1 FROM mysql.user WHERE User = %s AND Host = %s", (tenant.user, self.user_host))
        if cur.fetchone() is None:
            return
        cur.execute("SHOW GRANTS FOR %s@%s", (tenant.user, self.user_host))
        own = f" ON {grant_pattern(tenant.name)}.* "
        foreign = [
            row[0] for row in cur.fetchall() if not row[0].startswith("GRANT USAGE ON *.*") and own not in row[0]
        ]
        if foreign:
            raise ProvisioningError(
                f"Database user {tenant.user!r} already exists with other privileges; it is not this tenant's "
                "account. Give the tenant another user, or drop that account first."
            )

    def drop(self, tenant: TenantInfo) -> None:
        _refuse_master(tenant)
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
                return self._database_exists(cur, tenant.name)
        finally:
            conn.close()


class SQLiteProvisioner:
    """One file per tenant under `var/tenants/`."""

    def _path(self, tenant: TenantInfo) -> Path:
        name = tenant_database_settings(name=tenant.name, user=tenant.user, password=tenant.password)["NAME"]
        return Path(name)

    def create(self, tenant: TenantInfo) -> None:
        _refuse_master(tenant)
        path = self._path(tenant)
        path.parent.mkdir(parents=True, exist_ok=True)
        existed = path.exists() and path.stat().st_size > 0
        conn = sqlite3.connect(path)
        try:
            with conn:
                if not existed:
                    conn.execute(f"CREATE TABLE IF NOT EXISTS {OWNER_TABLE} (tenant_id INTEGER PRIMARY KEY)")
                    conn.execute(f"INSERT OR IGNORE INTO {OWNER_TABLE} (tenant_id) VALUES (?)", (tenant.id,))  # noqa: S608
                marked = conn.execute(
                    "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (OWNER_TABLE,)
                ).fetchone()
                owners = (
                    [int(r[0]) for r in conn.execute(f"SELECT tenant_id FROM {OWNER_TABLE} ORDER BY tenant_id")]  # noqa: S608
                    if marked
                    else None
                )
        finally:
            conn.close()
        _check_owner(tenant, owners)

    def drop(self, tenant: TenantInfo) -> None:
        _refuse_master(tenant)
        path = self._path(tenant)
        for suffix in ("", "-wal", "-shm", "-journal"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)

    def exists(self, tenant: TenantInfo) -> bool:
        return self._path(tenant).exists()


def provisioner() -> Provisioner:
    config = settings.M3SAAS_CONFIG
    return MySQLProvisioner(config) if config.is_mysql else SQLiteProvisioner()
