"""The commands' other branch: with CELERY_BROKER_URL set, one task per tenant on the workers.

`migrate_tenants`, `backup --all-tenants` and `runcrons` send one `tenants.tasks` task per
tenant, then wait and hand each tenant's result, as it arrives, to the same reporting the
in-process path feeds (so the summary and the exit code are the same); with `wait=False` they
return at once and the command says how to follow.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from celery.result import AsyncResult
from django.conf import settings
from django.utils import timezone

from m3saas.cron import JobOutcome
from m3saas.exceptions import ApplicationError
from m3saas.tenancy.each import TenantOutcome
from m3saas.tenancy.info import TenantInfo
from tenants.backup_files import backup_parse
from tenants.backups import BackupResult
from tenants.cron import CronReport, master_jobs_run
from tenants.models import Tenant
from tenants.selectors import tenant_info_list
from tenants.services import Seeding, TenantMigrationResult, tenants_to_migrate
from tenants.tasks import tenant_backup_task, tenant_crons_task, tenant_migrate_task

POLL_SECONDS = 0.2


@dataclass
class Sent:
    """Tasks sent for one command run: (tenant id, tenant name, result handle) each."""

    run: str
    tasks: list[tuple[int, str, AsyncResult]]

    def follow_hint(self, then: str) -> str:
        queue = settings.CELERY_TASK_DEFAULT_QUEUE
        return (
            f"Sent {len(self.tasks)} task(s) to queue '{queue}' (run {self.run}); not waiting. "
            f"Follow them in the workers' logs or with `celery -A m3saas.celery inspect active`; {then}"
        )


class FanOutTimeoutError(ApplicationError):
    code = "fan_out_timeout"
    default_message = "No task finished within the wait timeout."


def _wait(sent: Sent, on_result: Callable[[int, str, dict[str, Any]], None], timeout: float | None = None) -> None:
    """Hand each task's result to `on_result` as it finishes (a task that raised gives an `error`).

    Raises `FanOutTimeoutError` when no task finished for `timeout` seconds (default:
    FANOUT_WAIT_TIMEOUT), e.g. no worker consumes the queue; the tasks stay queued.
    """
    timeout = float(settings.FANOUT_WAIT_TIMEOUT) if timeout is None else timeout
    pending = list(sent.tasks)
    progress_at = time.monotonic()
    while pending:
        if time.monotonic() - progress_at > timeout:
            queue = settings.CELERY_TASK_DEFAULT_QUEUE
            raise FanOutTimeoutError(
                f"No task finished in {timeout:g} s on queue '{queue}' (run {sent.run}, {len(pending)} of "
                f"{len(sent.tasks)} still pending): is a worker consuming it (`make worker`)? The tasks stay queued."
            )
        still = []
        for tenant_id, name, handle in pending:
            if not handle.ready():
                still.append((tenant_id, name, handle))
                continue
            try:
                value = handle.get(propagate=True, disable_sync_subtasks=False)
            except Exception as exc:  # the task itself failed (e.g. the master stayed down)
                value = {"error": f"{type(exc).__name__}: {exc}"}
            handle.forget()
            progress_at = time.monotonic()
            on_result(tenant_id, name, value if isinstance(value, dict) else {"error": repr(value)})
        pending = still
        if pending:
            time.sleep(POLL_SECONDS)


def _run_id() -> str:
    return uuid.uuid4().hex[:12]


# --- migrate_tenants -----------------------------------------------------------------------


def migrate_fan_out(
    *,
    seed: Seeding = Seeding.NONE,
    failed_only: bool = False,
    wait: bool = True,
    wait_timeout: float | None = None,
    on_start: Callable[[int], None] | None = None,
    on_result: Callable[[TenantMigrationResult], None] | None = None,
) -> tuple[Sent, list[TenantMigrationResult]]:
    """`tenants_migrate_all` on the workers: the same tenants, one `tenants.migrate` task each."""
    rows = tenants_to_migrate(failed_only=failed_only, pending_only=False)
    run = _run_id()
    sent = Sent(
        run,
        [
            (r.id, r.name, tenant_migrate_task.apply_async(args=[r.id, str(seed)], task_id=f"migrate:{r.id}:{run}"))
            for r in rows
        ],
    )
    if on_start:
        on_start(len(rows))
    results: dict[int, TenantMigrationResult] = {}

    def done(tenant_id: int, name: str, value: dict[str, Any]) -> None:
        result = TenantMigrationResult(
            tenant=name,
            tenant_id=tenant_id,
            applied=list(value.get("applied") or []),
            error=value.get("error"),
            seconds=float(value.get("seconds") or 0.0),
            seeded=bool(value.get("seeded")),
        )
        results[tenant_id] = result
        if on_result:
            on_result(result)

    if wait:
        _wait(sent, done, wait_timeout)
    return sent, [results[r.id] for r in rows if r.id in results]


# --- backup --all-tenants ------------------------------------------------------------------


def _backup_result(value: dict[str, Any]) -> BackupResult | None:
    made = backup_parse(Path(value["path"])) if value.get("path") else None
    if made is None:
        return None
    removed = [b for b in (backup_parse(Path(p)) for p in value.get("removed") or []) if b is not None]
    return BackupResult(backup=made, removed=removed)


def backups_fan_out(
    *,
    wait: bool = True,
    wait_timeout: float | None = None,
    on_result: Callable[[TenantOutcome[BackupResult]], None] | None = None,
) -> tuple[Sent, list[TenantOutcome[BackupResult]]]:
    """`backups_create_all_tenants` on the workers: one `tenants.backup` task per tenant, keyed by this run."""
    tenants = tenant_info_list()
    run = _run_id()
    sent = Sent(run, [(t.id, t.name, _backup_send(t, run)) for t in tenants])
    outcomes: dict[int, TenantOutcome[BackupResult]] = {}
    by_id = {t.id: t for t in tenants}

    def done(tenant_id: int, name: str, value: dict[str, Any]) -> None:
        result = None if value.get("error") else _backup_result(value)
        error = value.get("error") or (None if result else f"no backup file reported: {value}")
        outcome: TenantOutcome[BackupResult] = TenantOutcome(
            tenant=by_id[tenant_id], value=result, error=error, seconds=float(value.get("seconds") or 0.0)
        )
        outcomes[tenant_id] = outcome
        if on_result:
            on_result(outcome)

    if wait:
        _wait(sent, done, wait_timeout)
    return sent, [outcomes[t.id] for t in tenants if t.id in outcomes]


def _backup_send(tenant: TenantInfo, run: str) -> AsyncResult:
    key = f"backup:{tenant.id}:{run}"
    return tenant_backup_task.apply_async(args=[tenant.id, key], task_id=key)


# --- runcrons ------------------------------------------------------------------------------


def crons_fan_out(
    *,
    now: datetime | None = None,
    tenant_names: Sequence[str] | None = None,
    wait: bool = True,
    wait_timeout: float | None = None,
) -> tuple[Sent, CronReport]:
    """`crons_run` with the tenants on the workers: the master's jobs here, one `tenants.crons` task per tenant."""
    now = now or timezone.now()
    report = CronReport()
    try:
        report.outcomes.extend(master_jobs_run(now=now))
    except Exception as exc:
        report.failed_databases["master"] = f"{type(exc).__name__}: {exc}"
    rows = Tenant.objects.order_by("id")
    if tenant_names is not None:
        rows = rows.filter(name__in=tenant_names)
    run = _run_id()
    sent = Sent(
        run,
        [
            (r.id, r.name, tenant_crons_task.apply_async(args=[r.id, now.isoformat()], task_id=f"crons:{r.id}:{run}"))
            for r in rows
        ],
    )

    def done(tenant_id: int, name: str, value: dict[str, Any]) -> None:
        if value.get("error"):
            report.failed_databases[name] = value["error"]
            return
        report.outcomes.extend(JobOutcome(**o) for o in value.get("outcomes") or [])

    if wait:
        _wait(sent, done, wait_timeout)
    return sent, report
