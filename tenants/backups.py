"""Backups of the master and tenant databases: take, prune, list, select and restore.

A backup is one gzip file `<BACKUP_DIR>/<database>/<database>-YYYY-MM-DD-HHMMSS.<ext>`:
`.sql.gz` from `mysqldump` on MySQL/MariaDB, `.sqlite3.gz` from SQLite's online backup API.
Each file also names its database inside (a header comment in the dump, an `m3saas_backup`
table in the SQLite copy), so a file renamed or copied to another database's folder is refused.
The date and series (time of day) are in the current time zone (`TIME_ZONE`).

MySQL/MariaDB runs the real client tools with the master's credentials from the config,
passed in a private temporary option file (never on the command line).
"""

from __future__ import annotations

import gzip
import json
import logging
import os
import re
import shutil
import sqlite3
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connections
from django.utils import timezone

from m3saas.exceptions import ApplicationError, NotFoundError
from m3saas.identifiers import quote_mysql_identifier
from m3saas.tenancy.connections import tenant_connection_register
from m3saas.tenancy.context import TenantInfo
from tenants.provisioning import OWNER_TABLE, provisioner

logger = logging.getLogger(__name__)

ENGINE_MYSQL = "mysql"
ENGINE_SQLITE = "sqlite"
EXTENSIONS = {ENGINE_MYSQL: ".sql.gz", ENGINE_SQLITE: ".sqlite3.gz"}
HEADER_PREFIX = b"-- M3SaaS backup "
META_TABLE = "m3saas_backup"
# Provisioning's owner mark tells whose database this is: a restore keeps the tenant's current
# one rather than the backup's (which may lack it).
OWNER_MARK_TABLE = OWNER_TABLE
FILE_RE = re.compile(
    r"^(?P<database>.+)-(?P<date>\d{4}-\d{2}-\d{2})-(?P<series>\d{6})(?P<ext>\.sql\.gz|\.sqlite3\.gz)$"
)
SERIES_RE = re.compile(r"^([01]\d|2[0-3])[0-5]\d[0-5]\d$")
_SAFE_DIR_RE = re.compile(r"^[A-Za-z0-9_$][A-Za-z0-9_$.-]*$")
_CHUNK = 1024 * 1024


class BackupError(ApplicationError):
    status_code = 500
    code = "backup_failed"
    default_message = "The backup could not be taken."


class RestoreError(ApplicationError):
    status_code = 500
    code = "restore_failed"
    default_message = "The backup could not be restored."


class BackupNotFoundError(NotFoundError):
    code = "backup_not_found"
    default_message = "No such backup."


class BackupMismatchError(ApplicationError):
    code = "backup_mismatch"
    default_message = "The backup belongs to another database."


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


@dataclass(frozen=True)
class Backup:
    """One backup file, as found on disk."""

    database: str
    day: date
    series: str
    path: Path

    @property
    def taken_at(self) -> datetime:
        """The local date and time of day the name records (naive)."""
        return datetime.combine(self.day, datetime.strptime(self.series, "%H%M%S").time())

    @property
    def size(self) -> int:
        return self.path.stat().st_size

    @property
    def sort_key(self) -> tuple[date, str]:
        return (self.day, self.series)


@dataclass
class BackupResult:
    backup: Backup
    removed: list[Backup] = field(default_factory=list)


def _engine() -> str:
    return ENGINE_MYSQL if settings.M3SAAS_CONFIG.is_mysql else ENGINE_SQLITE


def backup_dir() -> Path:
    return Path(settings.BACKUP_DIR)


def _check_dir_name(database: str) -> str:
    if not _SAFE_DIR_RE.match(database) or database in {".", ".."}:
        raise BackupError(f"'{database}' cannot be used as a backup folder name.")
    return database


# --- targets -------------------------------------------------------------------------------


def backup_target_master() -> BackupTarget:
    """The master database, with the config's `tenants.backup` limits."""
    config = settings.M3SAAS_CONFIG
    if config.is_mysql:
        database = str(connections[DEFAULT_DB_ALIAS].settings_dict["NAME"])
    else:
        database = Path(config.database.name).stem
    return BackupTarget(
        database=_check_dir_name(database), alias=DEFAULT_DB_ALIAS, per_day=config.backup.per_day, max=config.backup.max
    )


def backup_target_tenant(*, tenant: TenantInfo, per_day: int, max_backups: int) -> BackupTarget:
    return BackupTarget(database=tenant.name, alias=tenant.alias, per_day=per_day, max=max_backups, tenant=tenant)


def backup_target_get(*, tenant_name: str) -> BackupTarget:
    """The tenant named `tenant_name`, with its own limits; raises `TenantNotFoundError`."""
    from m3saas.exceptions import TenantNotFoundError
    from tenants.models import Tenant
    from tenants.selectors import tenant_info_from_row

    row = Tenant.objects.filter(name=tenant_name).first()
    if row is None:
        raise TenantNotFoundError(f"No tenant named '{tenant_name}'.")
    return backup_target_tenant(
        tenant=tenant_info_from_row(row), per_day=row.per_day_backups, max_backups=row.max_backups
    )


def backup_targets_all_tenants() -> list[BackupTarget]:
    """Every tenant, in id order, with its limits (two master queries)."""
    from tenants.models import Tenant
    from tenants.selectors import tenant_info_list

    limits = {t.name: (t.per_day_backups, t.max_backups) for t in Tenant.objects.all()}
    return [
        backup_target_tenant(tenant=info, per_day=limits[info.name][0], max_backups=limits[info.name][1])
        for info in tenant_info_list()
        if info.name in limits
    ]


# --- listing and selection -----------------------------------------------------------------


def _parse(path: Path) -> Backup | None:
    match = FILE_RE.match(path.name)
    if match is None:
        return None
    try:
        day = date.fromisoformat(match["date"])
    except ValueError:
        return None
    if not SERIES_RE.match(match["series"]):
        return None
    return Backup(database=match["database"], day=day, series=match["series"], path=path)


def backup_list(*, database: str, directory: Path | None = None) -> list[Backup]:
    """The backups of `database`, oldest first."""
    folder = (directory or backup_dir()) / _check_dir_name(database)
    if not folder.is_dir():
        return []
    found = (_parse(p) for p in folder.iterdir() if p.is_file())
    return sorted((b for b in found if b is not None and b.database == database), key=lambda b: b.sort_key)


def backups_list_all(*, directory: Path | None = None) -> dict[str, list[Backup]]:
    """Every database folder under the backup directory and its backups, by name."""
    root = directory or backup_dir()
    if not root.is_dir():
        return {}
    result: dict[str, list[Backup]] = {}
    for folder in sorted(root.iterdir()):
        if folder.is_dir() and _SAFE_DIR_RE.match(folder.name):
            result[folder.name] = backup_list(database=folder.name, directory=root)
    return result


def backup_select(
    *, database: str, day: date | None = None, series: str | None = None, directory: Path | None = None
) -> Backup:
    """The newest backup; with `day` the newest of that day; with `day` and `series` that one."""
    if series is not None:
        if day is None:
            raise BackupNotFoundError("A series needs a date: give --date YYYY-MM-DD with --series HHMMSS.")
        if not SERIES_RE.match(series):
            raise BackupNotFoundError(f"'{series}' is not a series: use the time of day as HHMMSS, e.g. 031500.")
    candidates = backup_list(database=database, directory=directory)
    if day is not None:
        candidates = [b for b in candidates if b.day == day]
    if series is not None:
        candidates = [b for b in candidates if b.series == series]
    if not candidates:
        wanted = " ".join(filter(None, [day.isoformat() if day else None, series])) or "any date"
        raise BackupNotFoundError(f"No backup of '{database}' for {wanted}.")
    return candidates[-1]


# --- retention -----------------------------------------------------------------------------


def backups_prune(*, database: str, per_day: int, max_backups: int, directory: Path | None = None) -> list[Backup]:
    """Delete the oldest backups beyond `per_day` on any day and `max_backups` overall.

    A limit below 1 means unlimited. Returns the deleted backups.
    """
    backups = backup_list(database=database, directory=directory)
    doomed: list[Backup] = []
    if per_day >= 1:
        by_day: dict[date, list[Backup]] = {}
        for backup in backups:
            by_day.setdefault(backup.day, []).append(backup)
        for day_backups in by_day.values():
            doomed.extend(day_backups[: max(len(day_backups) - per_day, 0)])
    kept = [b for b in backups if b not in doomed]
    if max_backups >= 1 and len(kept) > max_backups:
        doomed.extend(kept[: len(kept) - max_backups])
    for backup in doomed:
        backup.path.unlink(missing_ok=True)
        logger.info("backup %s removed by retention", backup.path.name)
    return sorted(doomed, key=lambda b: b.sort_key)


# --- taking a backup -----------------------------------------------------------------------


def backup_create(*, target: BackupTarget, now: datetime | None = None, directory: Path | None = None) -> BackupResult:
    """Back up `target` into a new file, then apply its retention limits.

    The file is written under a temporary name and renamed when complete, so a failed or
    interrupted backup never leaves a file that looks like a backup. If a backup with the
    same second exists, the next free second is used.
    """
    engine = _engine()
    local = timezone.localtime(now or timezone.now()).replace(microsecond=0)
    folder = (directory or backup_dir()) / _check_dir_name(target.database)
    folder.mkdir(parents=True, exist_ok=True)
    while True:
        name = f"{target.database}-{local:%Y-%m-%d-%H%M%S}{EXTENSIONS[engine]}"
        if not (folder / name).exists():
            break
        local += timedelta(seconds=1)
    final = folder / name
    header = {"database": target.database, "engine": engine, "taken_at": local.isoformat()}
    fd, partial_name = tempfile.mkstemp(prefix=f".{name}.", suffix=".partial", dir=folder)
    os.close(fd)
    partial = Path(partial_name)
    try:
        if target.tenant is not None:
            tenant_connection_register(target.tenant)
        if engine == ENGINE_MYSQL:
            _mysql_dump(target, header, partial)
        else:
            _sqlite_dump(target, header, partial)
        os.replace(partial, final)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    backup = _parse(final)
    assert backup is not None
    logger.info("backup of %s written to %s", target.database, final)
    removed = backups_prune(
        database=target.database, per_day=target.per_day, max_backups=target.max, directory=directory
    )
    return BackupResult(backup=backup, removed=removed)


@contextmanager
def _mysql_option_file() -> Iterator[str]:
    """A private option file with the master's credentials, removed afterwards."""
    db = settings.M3SAAS_CONFIG.database

    def quoted(value: str) -> str:
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'

    folder = tempfile.mkdtemp(prefix="m3saas-mysql-")
    path = Path(folder) / "client.cnf"
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(
                "[client]\n"
                f"user={quoted(db.user)}\n"
                f"password={quoted(db.password)}\n"
                f"host={quoted(db.host)}\n"
                f"port={db.port}\n"
            )
        yield str(path)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _mysql_database_name(target: BackupTarget) -> str:
    return str(connections[target.alias].settings_dict["NAME"])


def _mysql_dump(target: BackupTarget, header: dict[str, str], out: Path) -> None:
    # --single-transaction: a consistent InnoDB snapshot without locking tenants out of their data.
    # --routines/--triggers: a module's stored code comes back with its tables.
    # No --databases: the dump holds no CREATE DATABASE/USE, so it loads only where restore puts it.
    # --no-tablespaces: needs no PROCESS privilege. --hex-blob: binary columns survive any charset.
    with _mysql_option_file() as option_file:
        command = [
            settings.MYSQLDUMP_COMMAND,
            f"--defaults-extra-file={option_file}",
            "--single-transaction",
            "--routines",
            "--triggers",
            "--no-tablespaces",
            "--hex-blob",
            f"--default-character-set={settings.M3SAAS_CONFIG.charset}",
            _mysql_database_name(target),
        ]
        with gzip.open(out, "wb") as sink, tempfile.TemporaryFile() as errors:
            sink.write(HEADER_PREFIX + json.dumps(header, sort_keys=True).encode() + b"\n")
            try:
                process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=errors)  # noqa: S603
            except OSError as exc:
                raise BackupError(
                    f"Cannot run {settings.MYSQLDUMP_COMMAND!r} ({exc.strerror or exc}): install the MariaDB "
                    "client tools (Debian: apt-get install mariadb-client) or set MYSQLDUMP_COMMAND."
                ) from exc
            assert process.stdout is not None
            shutil.copyfileobj(process.stdout, sink, _CHUNK)
            code = process.wait()
            if code != 0:
                errors.seek(0)
                message = errors.read().decode(errors="replace").strip()
                raise BackupError(f"mysqldump of {target.database} failed (exit {code}): {message}")


def _sqlite_dump(target: BackupTarget, header: dict[str, str], out: Path) -> None:
    source = connections[target.alias]
    if source.in_atomic_block:
        # SQLite's backup API waits forever for a source that is mid-transaction on this connection.
        raise BackupError(f"{target.database}: an SQLite backup cannot be taken inside a transaction.")
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
        with copy_path.open("rb") as raw, gzip.open(out, "wb") as sink:
            shutil.copyfileobj(raw, sink, _CHUNK)


# --- restoring -----------------------------------------------------------------------------


def backup_header(backup: Backup) -> dict[str, str]:
    """What the file says about itself: database, engine, taken_at. Raises if it says nothing."""
    with tempfile.TemporaryDirectory(prefix="m3saas-restore-") as work:
        plain = Path(work) / "backup"
        _gunzip(backup.path, plain)
        return _plain_header(plain)


def _plain_header(plain: Path) -> dict[str, str]:
    with plain.open("rb") as fh:
        first = fh.read(len(HEADER_PREFIX))
        if first == HEADER_PREFIX:
            try:
                return dict(json.loads(fh.readline(4096)))
            except ValueError as exc:
                raise BackupMismatchError(f"{plain.name}: unreadable backup header ({exc}).") from exc
    return _sqlite_header(plain)


def _sqlite_header(path: Path) -> dict[str, str]:
    conn = sqlite3.connect(path)
    try:
        rows = conn.execute(f'SELECT "key", "value" FROM "{META_TABLE}"').fetchall()  # noqa: S608
    except sqlite3.DatabaseError as exc:
        raise BackupMismatchError(f"not an M3SaaS backup: it has no header ({exc}).") from exc
    finally:
        conn.close()
    return dict(rows)


def _gunzip(source: Path, dest: Path) -> None:
    try:
        with gzip.open(source, "rb") as raw, dest.open("wb") as out:
            shutil.copyfileobj(raw, out, _CHUNK)
    except (OSError, EOFError) as exc:
        raise RestoreError(f"{source.name} is damaged: {exc}") from exc


def _check_belongs(backup: Backup, header: dict[str, str], target: BackupTarget) -> None:
    if backup.database != target.database or header.get("database") != target.database:
        raise BackupMismatchError(
            f"{backup.path.name} is a backup of '{header.get('database') or backup.database}', "
            f"not of '{target.database}': refused."
        )
    if header.get("engine") != _engine():
        raise BackupMismatchError(
            f"{backup.path.name} was taken from a {header.get('engine')} database; this platform runs on {_engine()}."
        )


def backup_restore(*, target: BackupTarget, backup: Backup) -> None:
    """Replace every table of the tenant `target` with the content of `backup`.

    Other databases are not touched. The file is checked (name, header, integrity) before
    the tenant's data is dropped; a restore that fails leaves the tenant's data as it was.
    A restored tenant's schema is marked pending (`tenant_migrate` brings it up to date).
    """
    if target.tenant is None:
        raise RestoreError("Restoring the master database is done by hand; see README, 'Backups'.")
    engine = _engine()
    with tempfile.TemporaryDirectory(prefix="m3saas-restore-") as work:
        plain = Path(work) / "backup"
        _gunzip(backup.path, plain)
        header = _plain_header(plain)
        _check_belongs(backup, header, target)
        tenant_connection_register(target.tenant)
        connections[target.alias].close()
        if engine == ENGINE_MYSQL:
            _mysql_restore(target, plain)
        else:
            _sqlite_restore(target, plain)
    logger.info("tenant %s restored from %s", target.database, backup.path.name)
    from tenants.services import tenants_schema_mark_pending

    # The backup may predate migrations of the tenant's modules: its schema is to be brought up to date.
    tenants_schema_mark_pending(tenant_ids=[target.tenant.id])


def _mysql_restore(target: BackupTarget, plain: Path) -> None:
    """Load the dump into a scratch database, then swap its tables in for the tenant's.

    Nothing of the tenant's is touched until the dump has loaded cleanly; a failure at any
    step drops the scratch database and leaves the tenant as it was.
    """
    assert target.tenant is not None
    _mysql_client_check()
    scratch = _mysql_side_database(target.database, "restore")
    aside = _mysql_side_database(target.database, "previous")
    # The tenant's database, user and grant as provisioning makes them (all kept if present).
    provisioner().create(target.tenant)
    conn = _mysql_connect()
    try:
        with conn.cursor() as cur:
            # Leftovers of an interrupted restore: these names are this tenant's alone.
            cur.execute(f"DROP DATABASE IF EXISTS {_quote_side(scratch)}")
            cur.execute(f"DROP DATABASE IF EXISTS {_quote_side(aside)}")
            config = settings.M3SAAS_CONFIG
            for database in (scratch, aside):
                cur.execute(
                    f"CREATE DATABASE {_quote_side(database)} CHARACTER SET {config.charset} COLLATE {config.collation}"
                )
            swapped = False
            try:
                _mysql_load(plain, scratch)
                _mysql_swap(cur, tenant=target.database, scratch=scratch, aside=aside)
                swapped = True
            finally:
                cur.execute(f"DROP DATABASE IF EXISTS {_quote_side(scratch)}")
                # After a successful swap it holds the replaced tables; after a failure, normally nothing.
                if swapped or not _mysql_table_count(cur, aside):
                    cur.execute(f"DROP DATABASE IF EXISTS {_quote_side(aside)}")
                else:
                    logger.error("restore of %s failed half way; its tables are kept in %s", target.database, aside)
                    raise RestoreError(
                        f"Restoring {target.database} failed and its tables could not be put back: they are "
                        f"in the database `{aside}`; move them back by hand (RENAME TABLE)."
                    )
    except _mysql_errors() as exc:
        raise RestoreError(f"Restoring {target.database} failed; its data was left as it was: {exc}") from exc
    finally:
        conn.close()


def _mysql_table_count(cur: Any, database: str) -> int:
    cur.execute("SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s", (database,))
    return int(cur.fetchone()[0])


_SIDE_RE = re.compile(r"^[a-z][a-z0-9_]{0,47}\$(restore|previous)$")


def _mysql_side_database(database: str, purpose: str) -> str:
    """`<tenant>$restore` / `<tenant>$previous`: `$` is never in a tenant name, so these can
    belong to no tenant (and match no tenant's grant); at most 57 characters (MariaDB: 64)."""
    return _check_side(f"{database}${purpose}")


def _check_side(name: str) -> str:
    if not _SIDE_RE.match(name):
        raise RestoreError(f"{name!r} is not a scratch database name.")
    return name


def _quote_side(name: str) -> str:
    return f"`{_check_side(name)}`"


def _mysql_errors() -> tuple[type[Exception], ...]:
    import MySQLdb

    return (MySQLdb.Error,)


def _mysql_connect() -> Any:
    import MySQLdb

    db = settings.M3SAAS_CONFIG.database
    try:
        return MySQLdb.connect(
            host=db.host,
            port=db.port,
            user=db.user,
            password=db.password,
            charset=settings.M3SAAS_CONFIG.charset,
            multi_statements=False,
        )
    except MySQLdb.Error as exc:
        raise RestoreError(f"Cannot reach the database server {db.host}:{db.port}: {exc}") from exc


def _mysql_client_error(exc: OSError) -> RestoreError:
    return RestoreError(
        f"Cannot run {settings.MYSQL_COMMAND!r} ({exc.strerror or exc}): install the MariaDB client "
        "tools (Debian: apt-get install mariadb-client) or set MYSQL_COMMAND. The tenant was not touched."
    )


def _mysql_client_check() -> None:
    """Fail before anything is created or dropped when the `mysql` client cannot run."""
    try:
        done = subprocess.run(  # noqa: S603
            [settings.MYSQL_COMMAND, "--version"], capture_output=True, timeout=60, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise _mysql_client_error(exc if isinstance(exc, OSError) else OSError(str(exc))) from exc
    if done.returncode != 0:
        message = done.stderr.decode(errors="replace").strip()
        raise RestoreError(
            f"{settings.MYSQL_COMMAND!r} --version failed (exit {done.returncode}): {message}. "
            "The tenant was not touched."
        )


def _mysql_load(plain: Path, database: str) -> None:
    with _mysql_option_file() as option_file, plain.open("rb") as source, tempfile.TemporaryFile() as errors:
        command = [
            settings.MYSQL_COMMAND,
            f"--defaults-extra-file={option_file}",
            f"--default-character-set={settings.M3SAAS_CONFIG.charset}",
            _check_side(database),
        ]
        try:
            code = subprocess.run(command, stdin=source, stdout=subprocess.DEVNULL, stderr=errors).returncode  # noqa: S603
        except OSError as exc:
            raise _mysql_client_error(exc) from exc
        if code != 0:
            errors.seek(0)
            message = errors.read().decode(errors="replace").strip()
            raise RestoreError(f"Loading the backup failed (exit {code}), the tenant was not touched: {message}")


@dataclass
class _MySQLSchema:
    """What a database holds: tables (and sequences) to move, code objects to re-create."""

    tables: list[str] = field(default_factory=list)
    views: list[tuple[str, str]] = field(default_factory=list)  # name, CREATE VIEW
    triggers: list[tuple[str, str, str]] = field(default_factory=list)  # name, sql_mode, CREATE TRIGGER
    routines: list[tuple[str, str, str, str]] = field(default_factory=list)  # kind, name, sql_mode, CREATE


def _ident(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def _mysql_schema_read(cur: Any, database: str) -> _MySQLSchema:
    schema = _MySQLSchema()
    cur.execute(f"USE {_ident(database)}")
    cur.execute("SHOW FULL TABLES")
    for name, kind in cur.fetchall():
        if kind == "VIEW":
            cur.execute(f"SHOW CREATE VIEW {_ident(name)}")  # table names unqualified: the current database
            schema.views.append((name, cur.fetchone()[1]))
        else:
            schema.tables.append(name)
    cur.execute("SELECT TRIGGER_NAME FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = %s", (database,))
    for (name,) in cur.fetchall():
        cur.execute(f"SHOW CREATE TRIGGER {_ident(name)}")
        row = cur.fetchone()
        schema.triggers.append((name, row[1], row[2]))
    cur.execute(
        "SELECT ROUTINE_TYPE, ROUTINE_NAME FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = %s", (database,)
    )
    for kind, name in cur.fetchall():
        if kind not in ("PROCEDURE", "FUNCTION"):
            continue
        cur.execute(f"SHOW CREATE {kind} {_ident(name)}")
        row = cur.fetchone()
        schema.routines.append((kind, name, row[1], row[2]))
    return schema


def _mysql_code_drop(cur: Any, database: str, schema: _MySQLSchema) -> None:
    """Drop triggers, views and routines: triggers keep a table in its database, views hold no data."""
    cur.execute(f"USE {_ident(database)}")
    for name, _mode, _sql in schema.triggers:
        cur.execute(f"DROP TRIGGER IF EXISTS {_ident(name)}")
    for name, _sql in schema.views:
        cur.execute(f"DROP VIEW IF EXISTS {_ident(name)}")
    for kind, name, _mode, _sql in schema.routines:
        cur.execute(f"DROP {kind} IF EXISTS {_ident(name)}")


def _mysql_code_create(cur: Any, database: str, schema: _MySQLSchema) -> None:
    """Re-create routines, views (in an order their dependencies allow) and triggers."""
    import MySQLdb

    cur.execute(f"USE {_ident(database)}")
    cur.execute("SET @m3saas_sql_mode = @@SESSION.sql_mode")
    try:
        for _kind, _name, mode, sql in schema.routines:
            cur.execute("SET SESSION sql_mode = %s", (mode,))
            cur.execute(sql)
        cur.execute("SET SESSION sql_mode = @m3saas_sql_mode")
        waiting = list(schema.views)
        while waiting:
            failed: list[tuple[str, str]] = []
            error: Exception | None = None
            for name, sql in waiting:
                try:
                    cur.execute(sql)
                except MySQLdb.Error as exc:  # may use a view not created yet
                    failed.append((name, sql))
                    error = exc
            if len(failed) == len(waiting):
                assert error is not None
                raise error
            waiting = failed
        for _name, mode, sql in schema.triggers:
            cur.execute("SET SESSION sql_mode = %s", (mode,))
            cur.execute(sql)
    finally:
        cur.execute("SET SESSION sql_mode = @m3saas_sql_mode")


def _mysql_rename(cur: Any, moves: list[tuple[str, str, str]]) -> None:
    """One RENAME TABLE statement: all of `moves` (table, from, to) happen, or none does."""
    if moves:
        cur.execute(
            "RENAME TABLE "
            + ", ".join(f"{_ident(src)}.{_ident(t)} TO {_ident(dst)}.{_ident(t)}" for t, src, dst in moves)
        )


def _mysql_swap(cur: Any, *, tenant: str, scratch: str, aside: str) -> None:
    """Move the tenant's tables aside and the scratch tables in, in one statement; re-create
    the code objects of the backup in the tenant. Any failure puts the tenant's own back."""
    quote_mysql_identifier(tenant)  # validates the name
    new = _mysql_schema_read(cur, scratch)
    # MariaDB may qualify column references of a view with its database; the scratch name
    # (with its `$`) cannot be anything else, so dropping it makes them the tenant's.
    new.views = [(name, sql.replace(_ident(scratch) + ".", "")) for name, sql in new.views]
    old = _mysql_schema_read(cur, tenant)
    if OWNER_MARK_TABLE in old.tables:  # the tenant's own mark stays, whatever the backup holds
        old.tables.remove(OWNER_MARK_TABLE)
        new.tables = [t for t in new.tables if t != OWNER_MARK_TABLE]
    _mysql_code_drop(cur, scratch, new)
    _mysql_code_drop(cur, tenant, old)
    swap = [(t, tenant, aside) for t in old.tables] + [(t, scratch, tenant) for t in new.tables]
    try:
        _mysql_rename(cur, swap)
    except BaseException:
        _mysql_code_create(cur, tenant, old)
        raise
    try:
        _mysql_code_create(cur, tenant, new)
    except BaseException:
        logger.warning("restore of %s: re-creating views/triggers/routines failed; putting its data back", tenant)
        _mysql_code_drop(cur, tenant, _mysql_schema_read(cur, tenant))
        _mysql_rename(cur, [(t, dst, src) for t, src, dst in reversed(swap)])
        _mysql_code_create(cur, tenant, old)
        raise


def _sqlite_restore(target: BackupTarget, plain: Path) -> None:
    source = sqlite3.connect(plain)
    try:
        source.execute(f'DROP TABLE "{META_TABLE}"')
        dest = connections[target.alias]
        dest.ensure_connection()
        _sqlite_owner_mark_keep(dest.connection, source)
        source.commit()
        # The online backup API replaces every page of the destination, schema included.
        source.backup(dest.connection)
    finally:
        source.close()
        connections[target.alias].close()


def _sqlite_owner_mark_keep(dest: sqlite3.Connection, source: sqlite3.Connection) -> None:
    """Put the tenant's current owner mark (if it has one) into the copy about to be restored."""
    found = dest.execute("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?", (OWNER_MARK_TABLE,))
    row = found.fetchone()
    if row is None:
        return
    rows = dest.execute(f'SELECT * FROM "{OWNER_MARK_TABLE}"').fetchall()  # noqa: S608
    source.execute(f'DROP TABLE IF EXISTS "{OWNER_MARK_TABLE}"')
    source.execute(row[0])
    if rows:
        marks = ", ".join("?" * len(rows[0]))
        source.executemany(f'INSERT INTO "{OWNER_MARK_TABLE}" VALUES ({marks})', rows)  # noqa: S608
