"""What every engine adapter shares: the interface, the tenant owner mark, the errors.

Imported while the settings load: nothing here may need the app registry at import time.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from contextlib import AbstractContextManager
from io import BufferedIOBase
from pathlib import Path
from typing import Any, Protocol

from django.conf import settings

from m3saas.conf import Config, ServerConfig
from m3saas.exceptions import ApplicationError, ProvisioningError
from m3saas.passwords import password_decrypt
from m3saas.tenancy.info import TenantInfo

# The table of a tenant database that names the tenant it was created for.
OWNER_TABLE = "m3saas_owner"
# Bytes copied at a time between dumps, gzip streams and files.
COPY_CHUNK = 1024 * 1024


class BackupError(ApplicationError):
    status_code = 500
    code = "backup_failed"
    default_message = "The backup could not be taken."


class RestoreError(ApplicationError):
    status_code = 500
    code = "restore_failed"
    default_message = "The backup could not be restored."


class BackupMismatchError(ApplicationError):
    code = "backup_mismatch"
    default_message = "The backup belongs to another database."


class MoveError(ApplicationError):
    status_code = 500
    code = "move_failed"
    default_message = "The tenant could not be moved."


class Engine(Protocol):
    """One database vendor: its settings entries, provisioning, schema lock, dump and load.

    Provisioning, dump and load act on the tenant's server (`TenantInfo.server`, an alias's
    `M3SAAS_SERVER`); the schema lock is the master's.

    Provisioning is idempotent. A database it creates holds an owner mark (`OWNER_TABLE`: the
    tenant id and this installation's id). An existing database without this tenant's mark of
    this installation is refused before anything in it or its user changes: it may be a deleted
    tenant's data (deleting a tenant row keeps its database), which a new tenant of the same
    name must never inherit, or another installation's on the same server (see `owner_mark_check`).
    """

    # The config's `tenants.database.backend`, Django's `connection.vendor` and a backup's header.
    vendor: str
    # How this vendor's backup files end (`<database>-YYYY-MM-DD-HHMMSS<extension>`).
    backup_extension: str

    def master_settings(self, config: Config, *, conn_max_age: int, connect_timeout: int) -> dict[str, Any]:
        """The master's `DATABASES["default"]` entry (Django fills its defaults)."""
        ...

    def tenant_settings(
        self, config: Config, *, name: str, user: str, password: str | None, server: ServerConfig
    ) -> dict[str, Any]:
        """The vendor's part of a tenant's `DATABASES` entry on `server`; `password` is the tenant's
        stored token (None: leave the database password out, nothing is decrypted)."""
        ...

    def database_create(self, tenant: TenantInfo, *, legacy_mark_adoptable: Callable[[], bool] | None = None) -> None:
        """Create (or check) the tenant's database and user.

        `legacy_mark_adoptable` answers whether a legacy mark naming this tenant is this
        installation's (asked only when there is one; see `owner_mark_check`).
        """
        ...

    def database_drop(self, tenant: TenantInfo) -> None: ...

    def database_exists(self, tenant: TenantInfo) -> bool: ...

    def schema_lock(self, tenant: TenantInfo, *, timeout: int) -> AbstractContextManager[bool]:
        """Held while the tenant's schema changes (or it moves); yields False when `timeout` seconds
        passed first (0: at once, without waiting). Released when the holder's process dies."""
        ...

    def server_problem(self, server: ServerConfig, *, timeout: int | None = None) -> str | None:
        """Why `server` cannot be reached with its account now (None: it answers); `timeout`
        (seconds) replaces `DB_CONNECT_TIMEOUT` for the connection attempt."""
        ...

    def is_unavailable(self, error: BaseException) -> bool:
        """Whether the driver's `error` says the server cannot be reached (not that the query is wrong)."""
        ...

    def master_names(self, config: Config) -> tuple[str, str | None]:
        """The master's database name as a tenant's would be written, and its user (None: no users)."""
        ...

    def master_backup_name(self) -> str:
        """The master database's name in backup folders and file names."""
        ...

    def backup_dump(self, *, alias: str, database: str, header: dict[str, str], sink: BufferedIOBase) -> None:
        """Write a copy of `alias` (named `database`) and its `header` to `sink`."""
        ...

    def backup_header(self, plain: Path) -> dict[str, str] | None:
        """The header of this vendor's uncompressed backup `plain`; None when it is not this vendor's."""
        ...

    def backup_load(
        self, *, tenant: TenantInfo, plain: Path, legacy_mark_adoptable: Callable[[], bool] | None = None
    ) -> None:
        """Replace the tenant's tables by those of the uncompressed backup `plain`, keeping its owner mark
        (checked first, as `database_create` does).

        A failure leaves the tenant's data as it was.
        """
        ...

    # --- moving a tenant to another server (see `tenants.moves`) ---------------------------------

    def privileges_set(self, tenant: TenantInfo, *, access: str) -> None:
        """Leave the tenant user `access` to its database on `tenant.server`: `write` (as
        provisioning gives), `read` (its writes frozen) or `none` (retired). Its open sessions are
        ended, and gone, when this returns: a session keeps the privileges it started with."""
        ...

    def database_clear(self, tenant: TenantInfo) -> None:
        """Drop everything in the tenant's database on `tenant.server` but its owner mark."""
        ...

    def database_copy(self, source: TenantInfo, target: TenantInfo) -> None:
        """Copy the tenant's database from `source.server` into its (provisioned, empty) database
        on `target.server`: tables, rows, views, routines and triggers; raises `MoveError`."""
        ...

    def database_fingerprint(self, tenant: TenantInfo) -> dict[str, str]:
        """Per table its row count and checksum, and each view, routine and trigger by name: two
        copies are the same when these are equal."""
        ...

    def is_write_refused(self, error: BaseException) -> bool:
        """Whether the driver's `error` says the tenant user may not do this (a frozen or retired
        database), as opposed to a wrong query or an unreachable server."""
        ...


def tenant_db_password(password: str) -> str:
    """The tenant database user's password: a SHA-256 of the configured salt and the tenant password.

    `password` is the stored token (`TenantInfo.password`); the clear one exists only in here.
    """
    clear = password_decrypt(password)
    return hashlib.sha256(f"{settings.M3SAAS_CONFIG.db_salt}{clear}".encode()).hexdigest()


def master_clash(engine: Engine, *, name: str, user: str) -> dict[str, str]:
    """Why a tenant database `name` or `user` would be the master's own (empty: it is not)."""
    master_database, master_user = engine.master_names(settings.M3SAAS_CONFIG)
    errors: dict[str, str] = {}
    if name == master_database:
        errors["name"] = f"{name!r} is the master database's name."
    if master_user is not None and user == master_user:
        errors["user"] = f"{user!r} is the master database's user."
    return errors


def refuse_master(engine: Engine, tenant: TenantInfo) -> None:
    errors = master_clash(engine, name=tenant.name, user=tenant.user)
    if errors:
        raise ProvisioningError(f"Tenant {tenant.name}: {' '.join(errors.values())}")


def database_unclaimed(cur: Any, *, tables: set[str], owner: str) -> bool:
    """Whether a database whose tables (and views) are `tables` holds nothing at all: at most an
    empty owner table, reached from `cur` as `owner`; that empty table is dropped (the claim makes
    it again in today's shape).

    That is what a provisioning killed between creating the database and writing its mark leaves
    (MariaDB's DDL is not transactional); with no data in it, claiming it exposes nothing.
    """
    if tables - {OWNER_TABLE}:
        return False
    if tables:
        cur.execute(f"SELECT COUNT(*) FROM {owner}")  # noqa: S608
        if cur.fetchone()[0]:
            return False
        cur.execute(f"DROP TABLE {owner}")
    return True


# An owner mark: one (tenant id, installation id) row; installation None in a mark written
# before installations had ids (a legacy mark).
OwnerMark = list[tuple[int, str | None]]


def owner_mark_read(cur: Any, table: str) -> tuple[OwnerMark, bool]:
    """The rows of the owner mark `table` (qualified as the engine needs), and whether it has
    the installation column (a legacy mark has not)."""
    cur.execute(f"SELECT * FROM {table}")  # noqa: S608
    columns = [column[0].lower() for column in cur.description]
    at = columns.index("installation") if "installation" in columns else None
    tenant_at = columns.index("tenant_id")
    marks = [(int(row[tenant_at]), None if at is None or row[at] is None else str(row[at])) for row in cur.fetchall()]
    return sorted(marks, key=lambda mark: (mark[0], mark[1] or "")), at is not None


def owner_mark_claim(
    cur: Any,
    *,
    tenant: TenantInfo,
    table: str,
    insert: str,
    param: str,
    existed: bool,
    marked: bool,
    adopt_legacy: Callable[[], bool] | None,
) -> None:
    """Mark a database made now as this installation's, or check an existing one's mark.

    `cur` is a DB-API cursor of the admin connection, `table` the owner table as it is reached
    from it, `insert` the vendor's insert-if-absent verb and `param` the driver's placeholder.
    A legacy mark naming this tenant (and no installation) is upgraded when `adopt_legacy()`
    says so (see `owner_mark_check`). Anything else raises `ProvisioningError`, before the caller
    changes the database or its user.
    """
    from m3saas.installation import installation_id

    installation = installation_id()
    if not existed:
        cur.execute(f"CREATE TABLE IF NOT EXISTS {table} (tenant_id BIGINT PRIMARY KEY, installation VARCHAR(36))")
        cur.execute(f"{insert} {table} (tenant_id, installation) VALUES ({param}, {param})", (tenant.id, installation))
        marked = True
    mark, has_column = owner_mark_read(cur, table) if marked else (None, False)
    legacy = mark == [(tenant.id, None)] and adopt_legacy is not None and adopt_legacy()
    if owner_mark_check(tenant, mark, installation=installation, adopt_legacy=legacy) == "legacy":
        if not has_column:
            cur.execute(f"ALTER TABLE {table} ADD COLUMN installation VARCHAR(36)")
        cur.execute(f"UPDATE {table} SET installation = {param} WHERE tenant_id = {param}", (installation, tenant.id))  # noqa: S608


def owner_mark_check(tenant: TenantInfo, mark: OwnerMark | None, *, installation: str, adopt_legacy: bool) -> str:
    """`"own"` or `"legacy"` (a mark naming only this tenant, to adopt); raises otherwise.

    `mark` is None when the database has no mark. A legacy mark (from before installation ids)
    is adopted only when `adopt_legacy`: this installation's master has been serving the tenant
    (the caller's rule: ready, or migrated successfully here). Another installation's new
    tenant of the same id and name has been neither before its first provisioning: refused.
    """
    if mark == [(tenant.id, installation)]:
        return "own"
    if mark == [(tenant.id, None)] and adopt_legacy:
        return "legacy"
    prefix = f"Database {tenant.name!r} already exists and"
    advice = "Back it up and drop it, or give the tenant another name."
    if mark is None:
        reason = "was not created by M3SaaS for it (no owner mark): it may hold a deleted tenant's data."
    elif any(owner not in (installation, None) for _, owner in mark):
        reason = "belongs to another M3SaaS installation on this server (its owner mark): it was left untouched."
        advice = "Give the tenant another database name."
    elif mark == [(tenant.id, None)]:
        reason = (
            f"has an owner mark without an installation id (tenant #{tenant.id} only), and this installation "
            "has never served it: it may be another installation's."
        )
        advice = f"If it is this installation's, set its {OWNER_TABLE}.installation to '{installation}' and rerun."
    else:
        owners = ", #".join(str(owner) for owner, _ in mark)
        reason = f"belongs to tenant #{owners}: it may hold a deleted tenant's data."
    raise ProvisioningError(f"{prefix} {reason} {advice}")
