"""Long operator work (a major-version change, a backup now): accepted with 202, run apart, polled.

The request creates an `OperatorJob` row in the master and answers 202 with its URL. The work
runs on a Celery worker (`tenants.operator_job` task) when CELERY_BROKER_URL is set, else in a
background thread of the process that accepted it. Either way `operator_job_run` does it: it
claims the job, runs the same service as `upgrade_subscription` / `backup` (the tenant's
context and lock), and records the result or the error on the row, where the poll reads it.

A runner claims the job atomically: a queued job goes to exactly one of two concurrent
deliveries, and the claim records the runner's process (`<thread|celery>:<host>:<pid>`). A
running job is claimed again only when its runner is known dead: its process on this host is
gone, or (a Celery job) it started longer ago than the broker's visibility timeout, which no
task may outlast. So a Celery task delivered twice does nothing while the first runs or after it
ended; one redelivered after its worker died runs the work again (an upgrade already done
changes nothing; a backup is taken once more). A thread dies with its process: a job whose
thread's process is gone is closed as failed ("Interrupted") when it is next read.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, IntegrityError, OperationalError, connections, transaction
from django.utils import timezone

from m3saas.audit.services import Source, audit_record
from m3saas.exceptions import ApplicationError, NotFoundError
from m3saas.idempotency import IdempotencyKeyReusedError
from m3saas.identifiers import is_digits
from m3saas.tenancy.each import tenant_work_run
from m3saas.tenancy.info import TenantInfo
from tenants.backups import backup_create, backup_target_tenant
from tenants.models import OperatorJob, Tenant
from tenants.selectors import tenant_info_fresh
from tenants.upgrade import subscription_upgrade_safe

logger = logging.getLogger(__name__)

Kind = OperatorJob.Kind
Status = OperatorJob.Status


class JobNotFoundError(NotFoundError):
    code = "job_not_found"
    default_message = "No such job."


def _this_process(kind: str = "thread") -> str:
    return f"{kind}:{socket.gethostname()}:{os.getpid()}"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _process_lost(runner: str) -> bool:
    """Whether `runner` (`<kind>:<host>:<pid>`) names a process on this host that is gone."""
    host, _, pid = runner.partition(":")[2].rpartition(":")
    return host == socket.gethostname() and is_digits(pid) and not _pid_alive(int(pid))


def _thread_lost(job: OperatorJob) -> bool:
    """Whether `job` ran in a thread of a process on this host that is gone."""
    return job.runner.startswith("thread:") and _process_lost(job.runner)


def _runner_dead(job: OperatorJob) -> bool:
    """Whether the runner of a running `job` is known dead, so that another may take the job over."""
    if _process_lost(job.runner):
        return True
    lease = float(settings.CELERY_BROKER_TRANSPORT_OPTIONS["visibility_timeout"])
    started = job.started_at
    return (
        job.runner.startswith("celery:") and started is not None and (timezone.now() - started).total_seconds() > lease
    )


# A bookkeeping write that meets a lock (SQLite: "database is locked" after its busy timeout, or
# at once between connections sharing a cache) changed nothing: it is tried again, so that a job
# is neither left queued because its claim met a lock nor left running because its end did.
_LOCKED_ATTEMPTS = 8


def _retry_locked(write: Callable[[], Any]) -> Any:
    for attempt in range(_LOCKED_ATTEMPTS):
        try:
            return write()
        except OperationalError as exc:
            if "locked" not in str(exc) or attempt == _LOCKED_ATTEMPTS - 1:
                raise
            time.sleep(0.05 * 2**attempt)
    raise AssertionError("unreachable")


def operator_job_claim(*, job_id: str) -> bool:
    """Take the job for this process: a queued one, or a running one whose runner is known dead.

    Each is one conditional UPDATE, so of two concurrent claims exactly one succeeds.
    """
    kind = "celery" if settings.CELERY_BROKER_URL else "thread"
    me = {"status": Status.RUNNING, "started_at": timezone.now(), "runner": _this_process(kind)}
    if OperatorJob.objects.filter(pk=job_id, status=Status.QUEUED).update(**me):
        return True
    job = OperatorJob.objects.filter(pk=job_id, status=Status.RUNNING).first()
    if job is None or not _runner_dead(job):
        return False
    # Compare and swap: only the claim that still sees the dead runner's values takes it over.
    taken = OperatorJob.objects.filter(
        pk=job_id, status=Status.RUNNING, runner=job.runner, started_at=job.started_at
    ).update(**me)
    if taken:
        logger.warning("operator job %s: its runner %s is gone; running it again", job_id, job.runner)
    return bool(taken)


def operator_job_get(*, job_id: str) -> OperatorJob:
    """The job, closed as failed first when the process whose thread ran it is gone."""
    job = OperatorJob.objects.filter(pk=job_id).first()
    if job is None:
        raise JobNotFoundError(f"No job {job_id!r}.")
    if not job.finished and _thread_lost(job):
        pid = job.runner.rpartition(":")[2]
        _finish(job, error=f"Interrupted: process {pid}, which ran this job, stopped before it ended.")
        job.refresh_from_db()
    return job


def operator_job_start(
    *,
    kind: str,
    tenant: Tenant,
    params: dict[str, Any],
    actor: str,
    idempotency_digest: str | None = None,
    fingerprint: str = "",
) -> tuple[OperatorJob, bool]:
    """Record the job and send it to its runner; returns (job, False) for a retry of a keyed request.

    A key the same actor used for another request (another fingerprint) raises
    `IdempotencyKeyReusedError`.
    """
    if idempotency_digest is not None:
        earlier = OperatorJob.objects.filter(actor=actor, idempotency_digest=idempotency_digest).first()
        if earlier is not None:
            return _replayed(earlier, fingerprint)
    try:
        with transaction.atomic(using=DEFAULT_DB_ALIAS):
            job = OperatorJob.objects.create(
                kind=kind,
                tenant=tenant,
                tenant_name=tenant.name,
                params=params,
                actor=actor,
                idempotency_digest=idempotency_digest,
                fingerprint=fingerprint,
            )
    except IntegrityError:
        # The same key's other request won the race.
        earlier = OperatorJob.objects.filter(actor=actor, idempotency_digest=idempotency_digest).first()
        if earlier is None:
            raise
        return _replayed(earlier, fingerprint)
    transaction.on_commit(lambda: _dispatch(job), using=DEFAULT_DB_ALIAS)
    return job, True


def _replayed(job: OperatorJob, fingerprint: str) -> tuple[OperatorJob, bool]:
    if job.fingerprint != fingerprint:
        raise IdempotencyKeyReusedError()
    return job, False


def _dispatch(job: OperatorJob) -> None:
    """Hand the job to a Celery worker (a broker is configured) or to a thread of this process."""
    if settings.CELERY_BROKER_URL:
        from tenants.tasks import operator_job_task

        task_id = f"job:{job.pk}"
        OperatorJob.objects.filter(pk=job.pk).update(runner=f"celery:{task_id}")
        try:
            operator_job_task.apply_async(args=[job.pk], task_id=task_id)
        except Exception as exc:  # the broker refused or is down: say so on the job
            logger.warning("operator job %s could not be queued: %s", job.pk, exc)
            _finish(job, error=f"Could not be queued on the broker: {type(exc).__name__}: {exc}")
        return
    OperatorJob.objects.filter(pk=job.pk).update(runner=_this_process())
    threading.Thread(target=_thread_main, args=(job.pk,), name=f"operator-job-{job.pk[:8]}", daemon=True).start()


def _thread_main(job_id: str) -> None:
    try:
        operator_job_run(job_id=job_id)
    except Exception:
        logger.exception("operator job %s failed outside its work", job_id)
    finally:
        connections.close_all()  # this thread's own connections (master and tenants)


def operator_job_run(*, job_id: str) -> OperatorJob | None:
    """Run the job if this delivery claims it (see `operator_job_claim`); record its outcome on the row."""
    claimed = _retry_locked(lambda: operator_job_claim(job_id=job_id))
    job = OperatorJob.objects.filter(pk=job_id).first()
    if not claimed or job is None:
        logger.info("operator job %s: running elsewhere, finished or gone; nothing to do", job_id)
        return job
    if job.tenant_id is None:
        _finish(job, error=f"Tenant {job.tenant_name} was deleted before the job ran.")
        job.refresh_from_db()
        return job
    try:
        tenant = tenant_info_fresh(tenant_id=job.tenant_id)
        result, error = _WORK[job.kind](tenant, job.params)
    except ApplicationError as exc:
        result, error = {}, exc.message
    except Exception as exc:
        logger.exception("operator job %s (%s of %s) failed", job.pk, job.kind, job.tenant_name)
        result, error = {}, f"{type(exc).__name__}: {exc}"
    _finish(job, result=result, error=error)
    job.refresh_from_db()
    return job


def _finish(job: OperatorJob, *, result: dict[str, Any] | None = None, error: str | None = None) -> None:
    """Record the job's end and its audit entry together (a poll never sees one without the other)."""
    status = Status.FAILED if error else Status.DONE

    def write() -> None:
        with transaction.atomic(using=DEFAULT_DB_ALIAS):
            OperatorJob.objects.filter(pk=job.pk).update(
                status=status, finished_at=timezone.now(), result=result or {}, error=error or ""
            )
            audit_record(
                actor=job.actor,
                source=Source.API,
                action=f"job.{status}",
                target=job,
                detail={"kind": job.kind, "tenant": job.tenant_name, **({"error": error[:500]} if error else {})},
            )

    _retry_locked(write)


def _upgrade(tenant: TenantInfo, params: dict[str, Any]) -> tuple[dict[str, Any], str | None]:
    result = subscription_upgrade_safe(
        tenant=tenant, module=params["module"], to_version=int(params["version"]), drop_old=bool(params["drop_old"])
    )
    shown = {k: v for k, v in asdict(result).items() if k != "error"}
    return {**shown, "ok": result.ok, "message": result.describe()}, (result.describe() if not result.ok else None)


def _backup(tenant: TenantInfo, params: dict[str, Any]) -> tuple[dict[str, Any], str | None]:
    outcome = tenant_work_run(lambda t: backup_create(target=backup_target_tenant(tenant=t)), tenant, what="backup")
    if outcome.error is not None or outcome.value is None:
        return {}, outcome.error or "No backup was written."
    made = outcome.value.backup
    return {
        "file": made.path.name,
        "taken_at": made.taken_at.isoformat(),
        "size": made.size,
        "removed": [b.path.name for b in outcome.value.removed],
    }, None


_WORK: dict[str, Callable[[TenantInfo, dict[str, Any]], tuple[dict[str, Any], str | None]]] = {
    Kind.UPGRADE: _upgrade,
    Kind.BACKUP: _backup,
}
