"""The daily run behind `manage.py runcrons`: the master's jobs, then each tenant's.

For each tenant, inside its context: the tenant database's backup, then the due jobs of each
module it has (dependencies first), then the purge of its expired idempotency keys.
Declaring jobs and the due rules are `m3saas.cron`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from django.db import DEFAULT_DB_ALIAS
from django.utils import timezone

from m3saas.cron import PLATFORM, JobOutcome, backup_job, jobs_run, module_jobs
from m3saas.idempotency import idempotency_keys_purge
from m3saas.modules.versions import module_label
from m3saas.tenancy.context import use_tenant
from m3saas.tenancy.each import tenants_each
from m3saas.tenancy.info import TenantInfo
from tenants.backups import backup_create, backup_target_master, backup_target_tenant
from tenants.selectors import tenant_info_list

logger = logging.getLogger(__name__)

PURGE_JOB = "idempotency_keys_purge"


@dataclass
class CronReport:
    outcomes: list[JobOutcome] = field(default_factory=list)
    failed_databases: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.failed_databases and all(o.status != "failed" for o in self.outcomes)


def master_jobs_run(*, now: datetime) -> list[JobOutcome]:
    """The master database's scheduled backup (and any platform job) at `now`."""

    def backup() -> None:
        backup_create(target=backup_target_master(), now=now)

    job = backup_job(backup)
    jobs = [(PLATFORM, job)] if job else []
    return jobs_run(jobs=jobs, alias=DEFAULT_DB_ALIAS, database="master", now=now)


def tenant_jobs_run(*, tenant: TenantInfo, now: datetime) -> list[JobOutcome]:
    """Inside the tenant's context: its database backup, then its modules' due jobs.

    A module whose `cron.py` cannot be loaded is reported as a failed job and the rest go on.
    """

    def backup() -> None:
        target = backup_target_tenant(tenant=tenant)
        backup_create(target=target, now=now)

    outcomes: list[JobOutcome] = []
    with use_tenant(tenant):
        job = backup_job(backup)
        if job is not None:
            outcomes.extend(jobs_run(jobs=[(PLATFORM, job)], alias=tenant.alias, database=tenant.name, now=now))
        for name, major in tenant.modules:
            label = module_label(name, major)
            try:
                jobs = module_jobs(name, major)
            except Exception as exc:
                logger.exception("loading the jobs of %s failed for tenant %s", label, tenant.name)
                outcomes.append(JobOutcome(tenant.name, label, "cron.py", "failed", f"{type(exc).__name__}: {exc}"))
                continue
            outcomes.extend(
                jobs_run(jobs=[(label, j) for j in jobs], alias=tenant.alias, database=tenant.name, now=now)
            )
        try:
            # Keys are also purged when the tenant next uses one; this catches tenants that stopped.
            idempotency_keys_purge(alias=tenant.alias, now=now)
        except Exception as exc:
            logger.exception("purging the expired idempotency keys of tenant %s failed", tenant.name)
            outcomes.append(JobOutcome(tenant.name, PLATFORM, PURGE_JOB, "failed", f"{type(exc).__name__}: {exc}"))
    return outcomes


def crons_run(*, now: datetime | None = None, tenant_names: Sequence[str] | None = None) -> CronReport:
    """The daily run: the master first, then every tenant (or those named), each on its own."""
    now = now or timezone.now()
    report = CronReport()
    try:
        report.outcomes.extend(master_jobs_run(now=now))
    except Exception as exc:
        logger.exception("the master's scheduled jobs failed")
        report.failed_databases["master"] = f"{type(exc).__name__}: {exc}"
    tenants = [t for t in tenant_info_list() if tenant_names is None or t.name in tenant_names]

    def work(tenant: TenantInfo) -> list[JobOutcome]:
        return tenant_jobs_run(tenant=tenant, now=now)

    for outcome in tenants_each(work, tenants=tenants, what="scheduled jobs"):
        if outcome.value is not None:
            report.outcomes.extend(outcome.value)
        else:
            report.failed_databases[outcome.tenant.name] = outcome.error or "failed"
    return report
