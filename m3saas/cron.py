"""Scheduled jobs: declaration (`Job`), due-date rules, and running one job when it is due.

The daily runner behind `runcrons`, which walks the master and every tenant, is `tenants.cron`.

A module version declares its jobs in an optional `cron.py` as a list `JOBS` of `Job`s.
`runcrons` (run once a day, or more often: a job runs at most once per day) does, in order:
the master's backup and platform jobs, then for each tenant inside `use_tenant(tenant)` the
tenant database's backup and the due jobs of each module it has (dependencies first).

The rules follow the original M3SaaS `register_crobjob`: a job that never ran runs on the
first day its weekday/day/month condition holds; afterwards it runs on the first day, at or
after "last run + interval repeats", on which the condition holds. A month or year step
from the 31st lands on the last day of a shorter month. Each job's last run is a
`bookkeeping.JobRun` row in the database the job belongs to (master or tenant). A job that
raises is logged and recorded as failed and is tried again on the next run (a process
killed mid-job is not: its claim stands); it never stops the other jobs, and a tenant that
fails never stops the next tenant.

Two runners never run one job twice: a runner locks the job's `JobRun` row (`SELECT … FOR
UPDATE`; on SQLite a write, which takes the database's write lock), repeats the "due" test,
and claims the run before it commits; the other runner then finds the job not due.
"""

from __future__ import annotations

import calendar
import importlib
import importlib.util
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Literal

from django.conf import settings
from django.db import OperationalError, connections, transaction
from django.db.models import F
from django.utils import timezone

from m3saas.bookkeeping.models import JobRun
from m3saas.modules.registry import module_version_get

logger = logging.getLogger(__name__)

Repeat = Literal["day", "week", "month", "year"]
REPEATS: tuple[str, ...] = ("day", "week", "month", "year")
PLATFORM = ""  # JobRun.module of the platform's own jobs (backups)
BACKUP_JOB = "database_backup"
_ERROR_LIMIT = 4000


@dataclass(frozen=True)
class Job:
    """A scheduled job: run `func()` every `interval` `repeat`s.

    `weekday` (repeat "week"): 0 = Sunday … 6 = Saturday, as in the original.
    `day` (repeat "month" or "year"): day of the month, 1-31 (a month without it is skipped).
    `month` (repeat "year"): 1-12; with no `day`, the 1st of that month.
    """

    name: str
    func: Callable[[], object]
    repeat: Repeat = "day"
    interval: int = 1
    weekday: int | None = None
    day: int | None = None
    month: int | None = None

    def __post_init__(self) -> None:
        where = f"job '{self.name}'"
        if not self.name or len(self.name) > 100:
            raise ValueError(f"{where}: a job needs a name of 1 to 100 characters")
        if self.repeat not in REPEATS:
            raise ValueError(f"{where}: repeat must be one of {', '.join(REPEATS)}, not {self.repeat!r}")
        if isinstance(self.interval, bool) or not isinstance(self.interval, int) or self.interval < 1:
            raise ValueError(f"{where}: interval must be an integer of at least 1, not {self.interval!r}")
        if self.weekday is not None and (self.repeat != "week" or self.weekday not in range(7)):
            raise ValueError(f"{where}: weekday is 0 (Sunday) to 6 (Saturday), for repeat 'week' only")
        if self.day is not None and (self.repeat not in ("month", "year") or self.day not in range(1, 32)):
            raise ValueError(f"{where}: day is a day of the month (1-31), for repeat 'month' or 'year' only")
        if self.month is not None and (self.repeat != "year" or self.month not in range(1, 13)):
            raise ValueError(f"{where}: month is 1 to 12, for repeat 'year' only")
        if self.repeat == "year" and self.day is not None and self.month is None:
            raise ValueError(f"{where}: a yearly job with a day needs a month too")
        if not callable(self.func):
            raise ValueError(f"{where}: func must be callable")

    def matches(self, today: date) -> bool:
        """Whether `today` satisfies the weekday / day / month condition (if any)."""
        if self.weekday is not None:
            return (today.weekday() + 1) % 7 == self.weekday
        if self.month is not None:
            return today.month == self.month and today.day == (self.day or 1)
        if self.day is not None:
            return today.day == self.day
        return True

    def next_run(self, last_run: date) -> tuple[int, int, int]:
        """The earliest (year, month, day) after `last_run`; the day may not exist (Feb 31)."""
        if self.repeat == "day":
            n = last_run + timedelta(days=self.interval)
        elif self.repeat == "week":
            n = last_run + timedelta(weeks=self.interval)
        else:
            n = _add_months(last_run, self.interval * (12 if self.repeat == "year" else 1))
        year, month, day = n.year, n.month, n.day
        if self.month is not None:
            month, day = self.month, self.day or 1
        elif self.day is not None:
            day = self.day
        return (year, month, day)

    def is_due(self, *, today: date, last_run: date | None) -> bool:
        if not self.matches(today):
            return False
        if last_run is None:
            return True
        return (today.year, today.month, today.day) >= self.next_run(last_run)


def _add_months(value: date, months: int) -> date:
    index = value.year * 12 + value.month - 1 + months
    year, month = divmod(index, 12)
    month += 1
    return date(year, month, min(value.day, calendar.monthrange(year, month)[1]))


JobStatus = Literal["ok", "failed", "not_due", "busy"]


@dataclass
class JobOutcome:
    database: str
    module: str
    job: str
    status: JobStatus
    error: str = ""

    @property
    def ran(self) -> bool:
        return self.status in ("ok", "failed")


# --- discovery -----------------------------------------------------------------------------


def module_jobs(name: str, major: int) -> list[Job]:
    """The `JOBS` of `modules/<name>/v<major>/cron.py`; none when the file or version is absent."""
    version = module_version_get(name, major)
    if version is None:
        return []
    dotted = f"{version.app_name}.cron"
    if importlib.util.find_spec(dotted) is None:
        return []
    jobs = getattr(importlib.import_module(dotted), "JOBS", [])
    if not isinstance(jobs, (list, tuple)) or not all(isinstance(j, Job) for j in jobs):
        raise TypeError(f"{dotted}.JOBS must be a list of m3saas.cron.Job")
    names = [j.name for j in jobs]
    if len(names) != len(set(names)):
        raise ValueError(f"{dotted}.JOBS declares a job name twice")
    return list(jobs)


def backup_job(func: Callable[[], object]) -> Job | None:
    """The platform's database backup as a job, scheduled by BACKUP_REPEAT / BACKUP_INTERVAL."""
    repeat = str(settings.BACKUP_REPEAT).strip().lower()
    if repeat in ("off", "none", "never", ""):
        return None
    return Job(name=BACKUP_JOB, func=func, repeat=repeat, interval=int(settings.BACKUP_INTERVAL))  # type: ignore[arg-type]


# --- running -------------------------------------------------------------------------------


def _local_date(value: datetime) -> date:
    return timezone.localdate(value)


def _lock_row(alias: str, module: str, job: str) -> JobRun:
    """Lock the job's row for the current transaction and return it as committed."""
    rows = JobRun.objects.using(alias).filter(module=module, job=job)
    if connections[alias].features.has_select_for_update:
        return rows.select_for_update().get()
    # SQLite: a write takes the database's write lock (held until commit), then re-read.
    rows.update(last_status=F("last_status"))
    return rows.get()


def job_run_if_due(*, job: Job, module: str, alias: str, now: datetime, database: str | None = None) -> JobOutcome:
    """Run `job` if it is due in `alias` at `now`; at most one runner gets to run it.

    The runner that locks the job's row and still finds it due claims it (records `now` as
    its last run) and commits, then runs it without holding any lock: a long job (a backup)
    never blocks the tenant's database. A job that raises gets its previous last run back,
    so the next `runcrons` tries it again; a process killed mid-job leaves the claim.
    """
    database = database or alias
    today = _local_date(now)
    row = JobRun.objects.using(alias).filter(module=module, job=job.name).first()
    last = _local_date(row.last_run_at) if row is not None and row.last_run_at else None
    if not job.is_due(today=today, last_run=last):
        return JobOutcome(database, module, job.name, "not_due")
    if row is None:
        JobRun.objects.using(alias).get_or_create(module=module, job=job.name)
    try:
        with transaction.atomic(using=alias):
            try:
                row = _lock_row(alias, module, job.name)
            except OperationalError as exc:
                raise _LockBusy(str(exc)) from exc
            previous = row.last_run_at
            last = _local_date(previous) if previous else None
            if not job.is_due(today=today, last_run=last):
                return JobOutcome(database, module, job.name, "not_due")
            row.last_run_at = now
            row.save(using=alias, update_fields=["last_run_at"])
    except _LockBusy as exc:
        # The lock wait timed out: another runner holds this job's row.
        logger.warning("job %s:%s of %s is locked by another runner: %s", module, job.name, database, exc)
        return JobOutcome(database, module, job.name, "busy", str(exc))
    try:
        job.func()
    except Exception as exc:  # a failing job must not stop the others
        logger.exception("job %s:%s failed for %s", module or "platform", job.name, database)
        error = f"{type(exc).__name__}: {exc}"[:_ERROR_LIMIT]
        JobRun.objects.using(alias).filter(pk=row.pk, last_run_at=now).update(
            last_run_at=previous, last_status=JobRun.Status.FAILED, last_error=error
        )
        return JobOutcome(database, module, job.name, "failed", error)
    JobRun.objects.using(alias).filter(pk=row.pk).update(last_status=JobRun.Status.OK, last_error="")
    logger.info("job %s:%s ran for %s", module or "platform", job.name, database)
    return JobOutcome(database, module, job.name, "ok")


class _LockBusy(Exception):
    """Leaves the locking transaction (rolled back) when the row lock could not be had."""


def jobs_run(*, jobs: Iterable[tuple[str, Job]], alias: str, database: str, now: datetime) -> list[JobOutcome]:
    return [job_run_if_due(job=job, module=module, alias=alias, now=now, database=database) for module, job in jobs]
