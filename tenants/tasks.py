"""Per-tenant work as Celery tasks: one task = one tenant's migration, backup, scheduled jobs or upgrade.

Each task calls the service the in-process path calls, through `tenant_work_run` (the tenant's
context, set and reset whatever happens; its connections closed), so it takes the same lock
(the tenant's schema lock; the scheduled jobs' `JobRun` claims) and writes the same ledger
(`TenantMigrationRun`, `JobRun`, the backup folder). That is also what makes a second delivery
harmless: an up-to-date tenant's migration applies nothing, a claimed job is not due, a tenant
already on a version stays there; a backup carries a key (the task id), and a backup already
taken under that key is not taken again.

A task that finds the master or the tenant's database unreachable (before its work, or after a
failure) is tried again after TASK_RETRY_DELAY seconds, then twice, four times as long …, TASK_MAX_RETRIES times;
the last try runs anyway and records its failure where the in-process path would.
Results are plain dicts (JSON); `tenants.fanout` turns them back into the commands' results.
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict
from datetime import datetime
from pathlib import Path
from typing import Any

from celery import Task
from django.conf import settings
from django.db import connections
from django.utils import timezone

from m3saas.api import is_database_unavailable
from m3saas.celery import CRONS_DISPATCH, app
from m3saas.engines import engine
from m3saas.exceptions import ApplicationError
from m3saas.tenancy.connections import tenant_connection_register
from m3saas.tenancy.context import tenant_current, tenant_current_or_none, use_tenant
from m3saas.tenancy.each import TenantOutcome, tenant_connections_close, tenant_work_run
from m3saas.tenancy.info import TenantInfo
from tenants.backup_files import backup_dir, check_dir_name
from tenants.backups import backup_create, backup_target_tenant
from tenants.cron import master_jobs_run, tenant_jobs_run
from tenants.models import Tenant
from tenants.selectors import tenant_info_list_resolved
from tenants.services import Seeding, tenant_migrate, tenant_migration_failure_record
from tenants.upgrade import subscription_upgrade_safe

logger = logging.getLogger(__name__)

MIGRATE = "tenants.migrate"
BACKUP = "tenants.backup"
CRONS = "tenants.crons"
UPGRADE = "tenants.upgrade"
_TASK_OPTIONS: dict[str, Any] = {"bind": True, "acks_late": True, "reject_on_worker_lost": True}


class DatabaseUnavailableError(Exception):
    """The master or a tenant's database server does not answer: worth another try later."""


def _outage(exc: BaseException) -> bool:
    return any(e is not None and is_database_unavailable(e) for e in (exc, exc.__cause__, exc.__context__))


def _tenant_reachable_check(tenant: TenantInfo) -> None:
    """Raise `DatabaseUnavailableError` when the tenant's existing database does not answer.

    A database not created yet is not an outage (its migration creates it).
    """
    try:
        if engine().database_exists(tenant):
            connections[tenant_connection_register(tenant)].ensure_connection()
    except Exception as exc:
        if _outage(exc):
            raise DatabaseUnavailableError(f"tenant {tenant.name}'s database is unreachable: {exc}") from exc
    finally:
        tenant_connections_close()


def _retry_delay(retries: int) -> float:
    return min(float(settings.TASK_RETRY_DELAY) * 2**retries, 300.0)


def _tenant_task(
    task: Task,
    tenant_id: int,
    what: str,
    work: Callable[[TenantInfo], dict[str, Any]],
    on_unresolved: Callable[[Tenant, str], dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """Run one tenant's `work` (it returns the task's result, `error` set on failure), retrying on an outage."""
    leaked = tenant_current_or_none()
    if leaked is not None:  # never expected: every use_tenant resets; refuse rather than guess
        raise RuntimeError(f"{what} of tenant #{tenant_id} found tenant #{leaked.id} still current; refused")
    max_retries = int(settings.TASK_MAX_RETRIES)
    last_try = task.request.retries >= max_retries
    try:
        result = _tenant_task_body(task, tenant_id, what, work, on_unresolved, last_try=last_try)
    except Exception as exc:
        if not last_try and (isinstance(exc, DatabaseUnavailableError) or _outage(exc)):
            delay = _retry_delay(task.request.retries)
            logger.warning("%s of tenant #%s: database unavailable, retrying in %.1fs: %s", what, tenant_id, delay, exc)
            raise task.retry(exc=exc, countdown=delay, max_retries=max_retries) from exc
        raise
    result.update(tries=task.request.retries + 1, tenant_id=tenant_id)
    return result


def _tenant_task_body(
    task: Task,
    tenant_id: int,
    what: str,
    work: Callable[[TenantInfo], dict[str, Any]],
    on_unresolved: Callable[[Tenant, str], dict[str, Any]] | None,
    *,
    last_try: bool,
) -> dict[str, Any]:
    row = Tenant.objects.filter(pk=tenant_id).first()
    if row is None:
        return {"tenant": f"#{tenant_id}", "error": f"No tenant with id {tenant_id}."}
    resolved, unresolved = tenant_info_list_resolved([row])
    if unresolved:
        reason = unresolved[0][1]
        return on_unresolved(row, reason) if on_unresolved else {"tenant": row.name, "error": reason}
    tenant = resolved[0]
    with use_tenant(tenant):  # this line of the worker's log carries the tenant, as the web's do
        logger.info("%s of tenant %s: try %d (task %s)", what, tenant.name, task.request.retries + 1, task.request.id)
    if not last_try:
        _tenant_reachable_check(tenant)
    result = work(tenant)
    if result.get("error") and not last_try:
        _tenant_reachable_check(tenant)  # a failure from an outage during the work: try again
    return result


def _in_context(work: Callable[[TenantInfo], dict[str, Any]]) -> Callable[[TenantInfo], dict[str, Any]]:
    """`work`, with the tenant it ran in recorded in its result (`context`): the wrong-tenant check."""

    def run(given: TenantInfo) -> dict[str, Any]:
        result = work(given)
        result["context"] = tenant_current().id
        return result

    return run


def _outcome_dict(outcome: TenantOutcome[dict[str, Any]]) -> dict[str, Any]:
    result = dict(outcome.value or {})
    result.update(tenant=outcome.tenant.name, error=outcome.error, seconds=outcome.seconds)
    return result


# --- migration -----------------------------------------------------------------------------


@app.task(name=MIGRATE, **_TASK_OPTIONS)
def tenant_migrate_task(
    self: Task, tenant_id: int, seed: str = Seeding.NONE, trigger: str = "command"
) -> dict[str, Any]:
    """Provision, migrate and seed one tenant (`tenant_migrate`: its schema lock, its run in the master)."""

    def work(tenant: TenantInfo) -> dict[str, Any]:
        return asdict(tenant_migrate(tenant=tenant, seed=Seeding(seed), trigger=trigger))

    def unresolved(row: Tenant, reason: str) -> dict[str, Any]:
        # Recorded as `tenants_migrate_all` records a tenant whose modules do not resolve.
        return asdict(tenant_migration_failure_record(tenant_id=row.id, name=row.name, error=reason, trigger=trigger))

    return _tenant_task(self, tenant_id, "migration", work, unresolved)


# --- backup --------------------------------------------------------------------------------


@contextmanager
def _backup_claim(database: str, key: str) -> Iterator[Path]:
    """A marker for the backup taken under `key`, locked while held: a second delivery waits, then
    reads the path the first one wrote there."""
    folder = backup_dir() / check_dir_name(database)
    folder.mkdir(parents=True, exist_ok=True)
    marker = folder / f".task-{hashlib.sha256(key.encode()).hexdigest()[:32]}"
    with marker.open("a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield marker
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@app.task(name=BACKUP, **_TASK_OPTIONS)
def tenant_backup_task(self: Task, tenant_id: int, key: str | None = None) -> dict[str, Any]:
    """Back one tenant up (`backup_create`, then its retention), once per `key` (default: the task id)."""
    key = key or str(self.request.id)

    def backup(tenant: TenantInfo) -> dict[str, Any]:
        target = backup_target_tenant(tenant=tenant)
        with _backup_claim(target.database, key) as marker:
            taken = marker.read_text().strip()
            if taken and Path(taken).exists():
                logger.info("backup %s of tenant %s was already taken: %s", key, tenant.name, taken)
                return {"path": taken, "removed": [], "deduplicated": True}
            made = backup_create(target=target)
            marker.write_text(str(made.backup.path))
        return {"path": str(made.backup.path), "removed": [str(b.path) for b in made.removed], "deduplicated": False}

    def work(tenant: TenantInfo) -> dict[str, Any]:
        return _outcome_dict(tenant_work_run(_in_context(backup), tenant, what="backup"))

    return _tenant_task(self, tenant_id, "backup", work)


# --- scheduled jobs ------------------------------------------------------------------------


@app.task(name=CRONS, **_TASK_OPTIONS)
def tenant_crons_task(self: Task, tenant_id: int, now: str | None = None) -> dict[str, Any]:
    """One tenant's backup and due module jobs at `now` (ISO; default: when it runs), claimed in its `JobRun`s."""
    moment = datetime.fromisoformat(now) if now else timezone.now()

    def jobs(tenant: TenantInfo) -> dict[str, Any]:
        return {"outcomes": [asdict(o) for o in tenant_jobs_run(tenant=tenant, now=moment)]}

    def work(tenant: TenantInfo) -> dict[str, Any]:
        return _outcome_dict(tenant_work_run(_in_context(jobs), tenant, what="scheduled jobs"))

    return _tenant_task(self, tenant_id, "scheduled jobs", work)


@app.task(name=CRONS_DISPATCH, bind=True, acks_late=True)
def crons_dispatch_task(self: Task) -> dict[str, Any]:
    """What beat starts daily: the master's jobs here, then one `tenants.crons` task per tenant."""
    now = timezone.now()
    failed = [o.job for o in master_jobs_run(now=now) if o.status == "failed"]
    ids = list(Tenant.objects.order_by("id").values_list("id", flat=True))
    for tenant_id in ids:
        tenant_crons_task.apply_async(args=[tenant_id, now.isoformat()], task_id=f"crons:{tenant_id}:{now:%Y%m%d}")
    logger.info("scheduled jobs: master done (%d failed), %d tenant task(s) sent", len(failed), len(ids))
    return {"master_failed": failed, "tenants": len(ids)}


# --- upgrade -------------------------------------------------------------------------------


@app.task(name=UPGRADE, **_TASK_OPTIONS)
def tenant_upgrade_task(
    self: Task, tenant_id: int, module: str, to_version: int, drop_old: bool = False
) -> dict[str, Any]:
    """Move one tenant's subscription to `module` to major `to_version` (`subscription_upgrade`)."""

    def work(tenant: TenantInfo) -> dict[str, Any]:
        try:
            result = subscription_upgrade_safe(tenant=tenant, module=module, to_version=to_version, drop_old=drop_old)
        except ApplicationError as exc:
            return {"tenant": tenant.name, "module": module, "to_version": to_version, "error": exc.message}
        return asdict(result)

    return _tenant_task(self, tenant_id, "upgrade", work)


# --- operator jobs -------------------------------------------------------------------------

OPERATOR_JOB = "tenants.operator_job"


@app.task(name=OPERATOR_JOB, **_TASK_OPTIONS)
def operator_job_task(self: Task, job_id: str) -> dict[str, Any]:
    """Run an operator API job (`tenants.operator_api.jobs`); its outcome is kept on its row, polled over HTTP."""
    from tenants.operator_api.jobs import operator_job_run

    job = operator_job_run(job_id=job_id)
    return {"job": job_id, "status": job.status if job is not None else "gone"}
