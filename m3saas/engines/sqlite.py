"""SQLite: one file per database (the master's from the config, tenants' under `var/tenants/`).

Backups use SQLite's online backup API; a backup is a copy of the database with one more table,
`m3saas_backup`, that holds its header.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import sqlite3
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from io import BufferedIOBase
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import connections

from m3saas.conf import Config, ServerConfig
from m3saas.engines.base import (
    COPY_CHUNK,
    OWNER_TABLE,
    BackupError,
    BackupMismatchError,
    MoveError,
    database_unclaimed,
    owner_mark_claim,
    refuse_master,
)
from m3saas.tenancy.info import TenantInfo

META_TABLE = "m3saas_backup"
# Error messages that mean "the database cannot be used now", not "the query is wrong".
_UNREACHABLE_MESSAGES = ("unable to open database file", "database is locked", "disk i/o error")
_MAGIC = b"SQLite format 3\x00"
ONE_SERVER = "SQLite keeps every tenant database in one folder: there is no other server to move a tenant to."


def _tenant_path(config: Config, name: str) -> Path:
    return config.tenant_sqlite_dir / f"{name}.sqlite3"


class SQLiteEngine:
    vendor = "sqlite"
    backup_extension = ".sqlite3.gz"

    # --- settings entries ---------------------------------------------------------------------

    def master_settings(self, config: Config, *, conn_max_age: int, connect_timeout: int) -> dict[str, Any]:
        name = config.database.name
        Path(name).parent.mkdir(parents=True, exist_ok=True)
        return {"ENGINE": "django.db.backends.sqlite3", "NAME": name, "OPTIONS": {"timeout": 20}}

    def tenant_settings(
        self, config: Config, *, name: str, user: str, password: str | None, server: ServerConfig
    ) -> dict[str, Any]:
        # One implicit server: the folder `config.tenant_sqlite_dir` (`server` is the default one).
        return {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": str(_tenant_path(config, name)),
            "OPTIONS": {"timeout": 20},
        }

    # --- provisioning -------------------------------------------------------------------------

    def database_create(self, tenant: TenantInfo, *, legacy_mark_adoptable: Callable[[], bool] | None = None) -> None:
        refuse_master(self, tenant)
        path = _tenant_path(settings.M3SAAS_CONFIG, tenant.name)
        path.parent.mkdir(parents=True, exist_ok=True)
        existed = path.exists() and path.stat().st_size > 0
        conn = sqlite3.connect(path)
        try:
            with conn:
                cur = conn.cursor()
                # One transaction for the owner table and its row: the module leaves DDL in autocommit.
                cur.execute("BEGIN IMMEDIATE")
                existed = existed and not _unclaimed(cur)
                cur.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (OWNER_TABLE,))
                owner_mark_claim(
                    cur,
                    tenant=tenant,
                    table=OWNER_TABLE,
                    insert="INSERT OR IGNORE INTO",
                    param="?",
                    existed=existed,
                    marked=cur.fetchone() is not None,
                    adopt_legacy=legacy_mark_adoptable,
                )
        finally:
            conn.close()

    def database_drop(self, tenant: TenantInfo) -> None:
        refuse_master(self, tenant)
        path = _tenant_path(settings.M3SAAS_CONFIG, tenant.name)
        for suffix in ("", "-wal", "-shm", "-journal"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)

    def database_exists(self, tenant: TenantInfo) -> bool:
        return _tenant_path(settings.M3SAAS_CONFIG, tenant.name).exists()

    # --- running ------------------------------------------------------------------------------

    @contextmanager
    def schema_lock(self, tenant: TenantInfo, *, timeout: int) -> Iterator[bool]:
        """A lock file beside the tenant's database file (waits as long as it takes; timeout 0: not at all)."""
        path = settings.M3SAAS_CONFIG.tenant_sqlite_dir / f"{tenant.name}.schema.lock"
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | (fcntl.LOCK_NB if timeout <= 0 else 0))
            except BlockingIOError:
                yield False
                return
            try:
                yield True
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def server_problem(self, server: ServerConfig, *, timeout: int | None = None) -> str | None:
        """The implicit server is the tenants' folder: it must be (or be made) a writable folder."""
        folder = settings.M3SAAS_CONFIG.tenant_sqlite_dir
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            return f"The tenant folder {folder} cannot be made: {exc.strerror or exc}"
        if not os.access(folder, os.W_OK):
            return f"The tenant folder {folder} is not writable."
        return None

    def is_unavailable(self, error: BaseException) -> bool:
        message = error.args[0] if error.args else None
        return isinstance(message, str) and message.lower().startswith(_UNREACHABLE_MESSAGES)

    # --- backups ------------------------------------------------------------------------------

    def master_names(self, config: Config) -> tuple[str, str | None]:
        return Path(config.database.name).stem, None

    def master_backup_name(self) -> str:
        return Path(settings.M3SAAS_CONFIG.database.name).stem

    def backup_dump(self, *, alias: str, database: str, header: dict[str, str], sink: BufferedIOBase) -> None:
        source = connections[alias]
        if source.in_atomic_block:
            # SQLite's backup API waits forever for a source that is mid-transaction on this connection.
            raise BackupError(f"{database}: an SQLite backup cannot be taken inside a transaction.")
        source.ensure_connection()
        with tempfile.TemporaryDirectory(prefix="m3saas-backup-") as work:
            copy_path = Path(work) / "copy.sqlite3"
            copy = sqlite3.connect(copy_path)
            try:
                source.connection.backup(copy)
                copy.execute(f'CREATE TABLE "{META_TABLE}" ("key" TEXT PRIMARY KEY, "value" TEXT NOT NULL)')
                copy.executemany(f'INSERT INTO "{META_TABLE}" VALUES (?, ?)', sorted(header.items()))  # noqa: S608
                copy.commit()
            finally:
                copy.close()
            with copy_path.open("rb") as raw:
                shutil.copyfileobj(raw, sink, COPY_CHUNK)

    def backup_header(self, plain: Path) -> dict[str, str] | None:
        with plain.open("rb") as fh:
            if fh.read(len(_MAGIC)) != _MAGIC:
                return None
        conn = sqlite3.connect(plain)
        try:
            rows = conn.execute(f'SELECT "key", "value" FROM "{META_TABLE}"').fetchall()  # noqa: S608
        except sqlite3.DatabaseError as exc:
            raise BackupMismatchError(f"not an M3SaaS backup: it has no header ({exc}).") from exc
        finally:
            conn.close()
        return dict(rows)

    def backup_load(
        self, *, tenant: TenantInfo, plain: Path, legacy_mark_adoptable: Callable[[], bool] | None = None
    ) -> None:
        # The tenant's database as provisioning makes it; refused unless its mark is the tenant's.
        self.database_create(tenant, legacy_mark_adoptable=legacy_mark_adoptable)
        source = sqlite3.connect(plain)
        try:
            source.execute(f'DROP TABLE "{META_TABLE}"')
            dest = connections[tenant.alias]
            dest.ensure_connection()
            _owner_mark_keep(dest.connection, source)
            source.commit()
            # The online backup API replaces every page of the destination, schema included.
            source.backup(dest.connection)
        finally:
            source.close()
            connections[tenant.alias].close()

    # --- moving a tenant: SQLite keeps every tenant in one folder, the one implicit server -----

    def privileges_set(self, tenant: TenantInfo, *, access: str) -> None:
        raise MoveError(ONE_SERVER)

    def database_clear(self, tenant: TenantInfo) -> None:
        raise MoveError(ONE_SERVER)

    def database_copy(self, source: TenantInfo, target: TenantInfo) -> None:
        raise MoveError(ONE_SERVER)

    def database_fingerprint(self, tenant: TenantInfo) -> dict[str, str]:
        raise MoveError(ONE_SERVER)

    def is_write_refused(self, error: BaseException) -> bool:
        return False  # SQLite has no users nor grants


def _owner_mark_keep(dest: sqlite3.Connection, source: sqlite3.Connection) -> None:
    """Put the tenant's current owner mark (if it has one) into the copy about to be restored."""
    found = dest.execute("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?", (OWNER_TABLE,))
    row = found.fetchone()
    if row is None:
        return
    rows = dest.execute(f'SELECT * FROM "{OWNER_TABLE}"').fetchall()  # noqa: S608
    source.execute(f'DROP TABLE IF EXISTS "{OWNER_TABLE}"')
    source.execute(row[0])
    if rows:
        marks = ", ".join("?" * len(rows[0]))
        source.executemany(f'INSERT INTO "{OWNER_TABLE}" VALUES ({marks})', rows)  # noqa: S608


def _unclaimed(cur: sqlite3.Cursor) -> bool:
    cur.execute("SELECT name FROM sqlite_master WHERE type IN ('table', 'view') AND name NOT LIKE 'sqlite_%'")
    return database_unclaimed(cur, tables={row[0] for row in cur.fetchall()}, owner=OWNER_TABLE)
