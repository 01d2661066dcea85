"""What every engine adapter shares: the interface, the tenant owner mark, the errors.

Imported while the settings load: nothing here may need the app registry at import time.
"""

from __future__ import annotations

import hashlib
from contextlib import AbstractContextManager
from io import BufferedIOBase
from pathlib import Path
from typing import Any, Protocol

from django.conf import settings

from m3saas.conf import Config
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


class Engine(Protocol):
    """One database vendor: its settings entries, provisioning, schema lock, dump and load.

    Provisioning is idempotent. A database it creates holds an owner mark (`OWNER_TABLE`, the
    tenant id). An existing database without this tenant's mark is refused: it may be a deleted
    tenant's data (deleting a tenant row keeps its database), which a new tenant of the same
    name must never inherit.
    """

    # The config's `tenants.database.backend`, Django's `connection.vendor` and a backup's header.
    vendor: str
    # How this vendor's backup files end (`<database>-YYYY-MM-DD-HHMMSS<extension>`).
    backup_extension: str

    def master_settings(self, config: Config, *, conn_max_age: int, connect_timeout: int) -> dict[str, Any]:
        """The master's `DATABASES["default"]` entry (Django fills its defaults)."""
        ...

    def tenant_settings(self, config: Config, *, name: str, user: str, password: str) -> dict[str, Any]:
        """The vendor's part of a tenant's `DATABASES` entry; `password` is the tenant's stored token."""
        ...

    def database_create(self, tenant: TenantInfo) -> None: ...

    def database_drop(self, tenant: TenantInfo) -> None: ...

    def database_exists(self, tenant: TenantInfo) -> bool: ...

    def schema_lock(self, tenant: TenantInfo, *, timeout: int) -> AbstractContextManager[bool]:
        """Held while the tenant's schema changes; yields False when `timeout` seconds passed first."""
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

    def backup_load(self, *, tenant: TenantInfo, plain: Path) -> None:
        """Replace the tenant's tables by those of the uncompressed backup `plain`, keeping its owner mark.

        A failure leaves the tenant's data as it was.
        """
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


def check_owner(tenant: TenantInfo, owners: list[int] | None) -> None:
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
