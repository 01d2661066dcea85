"""Backups of the master and tenant databases: take and restore (files: `tenants.backup_files`).

The engine adapter writes and loads the copy (`m3saas.engines`); here it is named, compressed,
pruned, checked and swapped in. Each file also names its database inside (a header the
adapter writes), so a file renamed or copied to another database's folder is refused.
"""

from __future__ import annotations

import gzip
import logging
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connections
from django.utils import timezone

from m3saas.engines import BackupMismatchError, RestoreError, engine, engines
from m3saas.engines.base import COPY_CHUNK
from m3saas.exceptions import TenantNotFoundError
from m3saas.tenancy.connections import tenant_connection_register
from m3saas.tenancy.each import TenantOutcome, tenants_each
from m3saas.tenancy.info import TenantInfo
from tenants.backup_files import Backup, backup_parse, backup_path_new, backups_prune, check_dir_name
from tenants.models import Tenant
from tenants.selectors import tenant_info_from_row, tenant_info_list
from tenants.services import tenant_serves_legacy_mark, tenants_schema_mark_pending

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class BackupTarget:
    """A database to back up: the master (`alias` "default") or one tenant."""

    database: str
    alias: str
    per_day: int
    max: int
    tenant: TenantInfo | None = None

    @property
    def is_master(self) -> bool:
        return self.tenant is None


@dataclass
class BackupResult:
    backup: Backup
    removed: list[Backup] = field(default_factory=list)


# --- targets -------------------------------------------------------------------------------


def backup_target_master() -> BackupTarget:
    """The master database, with the config's `tenants.backup` limits."""
    limits = settings.M3SAAS_CONFIG.backup
    return BackupTarget(
        database=check_dir_name(engine().master_backup_name()),
        alias=DEFAULT_DB_ALIAS,
        per_day=limits.per_day,
        max=limits.max,
    )


def backup_target_tenant(*, tenant: TenantInfo) -> BackupTarget:
    """The tenant's database, with the tenant's own backup limits."""
    limits = tenant.backups
    return BackupTarget(database=tenant.name, alias=tenant.alias, per_day=limits.per_day, max=limits.max, tenant=tenant)


def backup_target_get(*, tenant_name: str) -> BackupTarget:
    """The tenant named `tenant_name`, with its own limits; raises `TenantNotFoundError`."""
    row = Tenant.objects.filter(name=tenant_name).first()
    if row is None:
        raise TenantNotFoundError(f"No tenant named '{tenant_name}'.")
    return backup_target_tenant(tenant=tenant_info_from_row(row))


def backups_create_all_tenants(
    *, on_result: Callable[[TenantOutcome[BackupResult]], None] | None = None
) -> list[TenantOutcome[BackupResult]]:
    """Back up every tenant database in turn (then its retention), carrying on past a failing one."""

    def work(tenant: TenantInfo) -> BackupResult:
        return backup_create(target=backup_target_tenant(tenant=tenant))

    return tenants_each(work, tenants=tenant_info_list(), on_result=on_result, what="backup")


# --- taking a backup -----------------------------------------------------------------------


def backup_create(*, target: BackupTarget, now: datetime | None = None, directory: Path | None = None) -> BackupResult:
    """Back up `target` into a new file, then apply its retention limits.

    The file is written under a temporary name and renamed when complete, so a failed or
    interrupted backup never leaves a file that looks like a backup. If a backup with the
    same second exists, the next free second is used.
    """
    adapter = engine()
    local = timezone.localtime(now or timezone.now()).replace(microsecond=0)
    final, local = backup_path_new(
        database=target.database, at=local, extension=adapter.backup_extension, directory=directory
    )
    header = {"database": target.database, "engine": adapter.vendor, "taken_at": local.isoformat()}
    fd, partial_name = tempfile.mkstemp(prefix=f".{final.name}.", suffix=".partial", dir=final.parent)
    os.close(fd)
    partial = Path(partial_name)
    try:
        if target.tenant is not None:
            tenant_connection_register(target.tenant)
        with gzip.open(partial, "wb") as sink:
            adapter.backup_dump(alias=target.alias, database=target.database, header=header, sink=sink)
        os.replace(partial, final)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    backup = backup_parse(final)
    assert backup is not None
    logger.info("backup of %s written to %s", target.database, final)
    removed = backups_prune(
        database=target.database, per_day=target.per_day, max_backups=target.max, directory=directory
    )
    return BackupResult(backup=backup, removed=removed)


# --- restoring -----------------------------------------------------------------------------


def backup_header(backup: Backup) -> dict[str, str]:
    """What the file says about itself: database, engine, taken_at. Raises if it says nothing."""
    with tempfile.TemporaryDirectory(prefix="m3saas-restore-") as work:
        plain = Path(work) / "backup"
        _gunzip(backup.path, plain)
        return _plain_header(plain)


def _plain_header(plain: Path) -> dict[str, str]:
    # Whichever engine wrote the file: a backup of another engine is refused by its header.
    for adapter in engines():
        header = adapter.backup_header(plain)
        if header is not None:
            return header
    raise BackupMismatchError(f"{plain.name}: not an M3SaaS backup: it has no header.")


def _gunzip(source: Path, dest: Path) -> None:
    try:
        with gzip.open(source, "rb") as raw, dest.open("wb") as out:
            shutil.copyfileobj(raw, out, COPY_CHUNK)
    except (OSError, EOFError) as exc:
        raise RestoreError(f"{source.name} is damaged: {exc}") from exc


def _check_belongs(backup: Backup, header: dict[str, str], target: BackupTarget) -> None:
    if backup.database != target.database or header.get("database") != target.database:
        raise BackupMismatchError(
            f"{backup.path.name} is a backup of '{header.get('database') or backup.database}', "
            f"not of '{target.database}': refused."
        )
    vendor = engine().vendor
    if header.get("engine") != vendor:
        raise BackupMismatchError(
            f"{backup.path.name} was taken from a {header.get('engine')} database; this platform runs on {vendor}."
        )


def backup_restore(*, target: BackupTarget, backup: Backup) -> None:
    """Replace every table of the tenant `target` with the content of `backup`.

    Other databases are not touched. The file is checked (name, header, integrity) before
    the tenant's data is dropped; a restore that fails leaves the tenant's data as it was.
    A restored tenant's schema is marked pending (`tenant_migrate` brings it up to date).
    """
    if target.tenant is None:
        raise RestoreError("Restoring the master database is done by hand; see README, 'Backups'.")
    with tempfile.TemporaryDirectory(prefix="m3saas-restore-") as work:
        plain = Path(work) / "backup"
        _gunzip(backup.path, plain)
        header = _plain_header(plain)
        _check_belongs(backup, header, target)
        tenant_connection_register(target.tenant)
        connections[target.alias].close()
        tenant = target.tenant
        engine().backup_load(
            tenant=tenant, plain=plain, legacy_mark_adoptable=lambda: tenant_serves_legacy_mark(tenant=tenant)
        )
    logger.info("tenant %s restored from %s", target.database, backup.path.name)
    # The backup may predate migrations of the tenant's modules: its schema is to be brought up to date.
    tenants_schema_mark_pending(tenant_ids=[target.tenant.id])
