"""One loop over tenants for batch work: migrations, seeds, scheduled jobs, backups, upgrades, reports.

Each tenant's work runs inside its tenant context and may fail on its own: the failure is
caught into that tenant's `TenantOutcome` and the loop goes on. The work's connections to
tenant databases are closed when it ends (a run over 1,000 tenants must not keep 1,000 open).
Outcomes reach `on_result` in the calling thread as tenants finish (so it may write master
rows and print), and come back in the order of `tenants`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from typing import Generic, TypeVar

from django.db import DEFAULT_DB_ALIAS, connections

from m3saas.exceptions import ApplicationError
from m3saas.tenancy.connections import tenant_connection_register
from m3saas.tenancy.context import use_tenant
from m3saas.tenancy.info import TenantInfo

logger = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass
class TenantOutcome(Generic[T]):
    """What one tenant's work returned, or the one-line reason it failed."""

    tenant: TenantInfo
    value: T | None = None
    error: str | None = None
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.error is None


def tenant_connections_close() -> None:
    """Close this thread's connections to tenant databases (the master's stays)."""
    for conn in connections.all(initialized_only=True):
        if conn.alias != DEFAULT_DB_ALIAS:
            conn.close()


def tenant_work_run(work: Callable[[TenantInfo], T], tenant: TenantInfo, *, what: str = "work") -> TenantOutcome[T]:
    """Run `work(tenant)` in the tenant's context; catch its failure; close its tenant connections."""
    started = time.monotonic()
    outcome: TenantOutcome[T] = TenantOutcome(tenant=tenant)
    try:
        with use_tenant(tenant):
            try:
                outcome.value = work(tenant)
            except Exception as exc:  # logged inside the context: the line carries the tenant
                outcome.error = _failure_log(exc, tenant, what)
    except Exception as exc:  # the tenant's context could not be set
        outcome.error = _failure_log(exc, tenant, what)
    finally:
        outcome.seconds = time.monotonic() - started
        tenant_connections_close()
    return outcome


def _failure_log(exc: Exception, tenant: TenantInfo, what: str) -> str:
    """Log one tenant's failure (one tenant's failure must not stop the others); its one-line reason."""
    if isinstance(exc, ApplicationError):
        logger.warning("%s of tenant %s failed: %s", what, tenant.name, exc.message)
        return exc.message
    logger.exception("%s of tenant %s failed", what, tenant.name)
    return f"{type(exc).__name__}: {exc}"


def tenants_each(
    work: Callable[[TenantInfo], T],
    *,
    tenants: Iterable[TenantInfo],
    workers: int = 1,
    on_result: Callable[[TenantOutcome[T]], None] | None = None,
    what: str = "work",
) -> list[TenantOutcome[T]]:
    """Run `work` for every tenant, at most `workers` at once, carrying on past failures.

    `what` names the work in log lines ("migration", "seeding", …).
    """
    todo = list(tenants)
    outcomes: dict[int, TenantOutcome[T]] = {}
    runnable: dict[int, TenantInfo] = {}
    for index, tenant in enumerate(todo):
        try:
            # In this thread: connection settings are shared by every thread.
            tenant_connection_register(tenant)
        except ApplicationError as exc:  # e.g. a password no configured key opens: this tenant only
            outcomes[index] = TenantOutcome(tenant=tenant, error=_failure_log(exc, tenant, what))
            if on_result is not None:
                on_result(outcomes[index])
        else:
            runnable[index] = tenant
    if workers <= 1 or len(runnable) <= 1:
        for index, tenant in runnable.items():
            outcomes[index] = tenant_work_run(work, tenant, what=what)
            if on_result is not None:
                on_result(outcomes[index])
        return [outcomes[index] for index in range(len(todo))]

    def run(tenant: TenantInfo) -> TenantOutcome[T]:
        try:
            return tenant_work_run(work, tenant, what=what)
        finally:
            connections.close_all()

    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix=what.replace(" ", "-")) as pool:
        futures: dict[Future[TenantOutcome[T]], int] = {pool.submit(run, tenant): i for i, tenant in runnable.items()}
        for future in as_completed(futures):
            index = futures[future]
            outcomes[index] = future.result()
            if on_result is not None:
                on_result(outcomes[index])
    return [outcomes[index] for index in range(len(todo))]
