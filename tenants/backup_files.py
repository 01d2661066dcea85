"""Backup files: their names, listing, selection and retention (no database is touched here).

A backup is one gzip file `<BACKUP_DIR>/<database>/<database>-YYYY-MM-DD-HHMMSS.<ext>`, the
extension the engine's (`.sql.gz`, `.sqlite3.gz`). The date and series (time of day) are in
the current time zone (`TIME_ZONE`).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path

from django.conf import settings

from m3saas.engines import BackupError, engines
from m3saas.exceptions import NotFoundError

logger = logging.getLogger(__name__)

FILE_RE = re.compile(
    r"^(?P<database>.+)-(?P<date>\d{4}-\d{2}-\d{2})-(?P<series>\d{6})"
    rf"(?P<ext>{'|'.join(re.escape(adapter.backup_extension) for adapter in engines())})$"
)
SERIES_RE = re.compile(r"^([01]\d|2[0-3])[0-5]\d[0-5]\d$")
_SAFE_DIR_RE = re.compile(r"^[A-Za-z0-9_$][A-Za-z0-9_$.-]*$")


class BackupNotFoundError(NotFoundError):
    code = "backup_not_found"
    default_message = "No such backup."


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


def backup_dir() -> Path:
    return Path(settings.BACKUP_DIR)


def check_dir_name(database: str) -> str:
    """`database`, when it is safe as a folder name under the backup directory."""
    if not _SAFE_DIR_RE.match(database) or database in {".", ".."}:
        raise BackupError(f"'{database}' cannot be used as a backup folder name.")
    return database


def backup_path_new(
    *, database: str, at: datetime, extension: str, directory: Path | None = None
) -> tuple[Path, datetime]:
    """A free file name for a backup of `database` taken at `at` (local time, whole seconds),
    and the time it records.

    If a backup with the same second exists, the next free second is used. The folder is
    created when missing.
    """
    folder = (directory or backup_dir()) / check_dir_name(database)
    folder.mkdir(parents=True, exist_ok=True)
    while True:
        path = folder / f"{database}-{at:%Y-%m-%d-%H%M%S}{extension}"
        if not path.exists():
            return path, at
        at += timedelta(seconds=1)


def backup_parse(path: Path) -> Backup | None:
    """The backup a file's name describes, or None when it is not a backup's name."""
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


# --- listing and selection -----------------------------------------------------------------


def backup_list(*, database: str, directory: Path | None = None) -> list[Backup]:
    """The backups of `database`, oldest first."""
    folder = (directory or backup_dir()) / check_dir_name(database)
    if not folder.is_dir():
        return []
    found = (backup_parse(p) for p in folder.iterdir() if p.is_file())
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
