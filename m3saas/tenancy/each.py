"""One loop over tenants for batch work: migrations, seeds, scheduled jobs, backups, upgrades, reports.

Each tenant's work runs inside its tenant context and may fail on its own: the failure is
caught into that tenant's `TenantOutcome` and the loop goes on. The work's connections to
tenant databases are closed when it ends (a run over 1,000 tenants must not keep 1,000 open).
Outcomes reach `on_result` in the calling thread as tenants finish (so it may write master
rows and print), and come back in the order of `tenants`.

A run stops early when its `stop` event is set (`stop_on_signals`: SIGTERM, Ctrl-C): tenants
in flight finish (a migration is never cut half-way), queued ones are not started and come
back as `not_run` outcomes, so a container stop (SIGTERM, killed 10 s later) ends it cleanly.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Generic, TypeVar

from django.db import DEFAULT_DB_ALIAS, connections

from m3saas.exceptions import ApplicationError
from m3saas.tenancy.connections import tenant_connection_register
from m3saas.tenancy.context import use_tenant
from m3saas.tenancy.info import TenantInfo

logger = logging.getLogger(__name__)

T = TypeVar("T")

NOT_RUN = "Not run: the run was stopped (SIGTERM or Ctrl-C) before this tenant's turn."


@dataclass
class TenantOutcome(Generic[T]):
    """What one tenant's work returned, or the one-line reason it failed."""

    tenant: TenantInfo
    value: T | None = None
    error: str | None = None
    seconds: float = 0.0
    # The run was stopped before this tenant's turn: its work never started.
    not_run: bool = False

    @property
    def ok(self) -> bool:
        return self.error is None


@contextmanager
def stop_on_signals() -> Iterator[threading.Event]:
    """An event set by the first SIGTERM or SIGINT (Ctrl-C) while the block runs, for `tenants_each(stop=)`.

    The first signal only asks the run to stop (tenants in flight finish); the previous handlers
    are put back at once, so a second signal acts as it would have (Ctrl-C twice interrupts).
    Outside the main thread (where Python allows no handler) the event is never set.
    """
    stop = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return
    watched = (signal.SIGTERM, signal.SIGINT)
    previous = {signum: signal.getsignal(signum) for signum in watched}

    def restore() -> None:
        for signum, handler in previous.items():
            signal.signal(signum, handler)

    def asked(signum: int, frame: object) -> None:
        logger.warning(
            "%s received: the tenants in flight finish, the others are not started", signal.Signals(signum).name
        )
        stop.set()
        restore()

    for signum in watched:
        signal.signal(signum, asked)
    try:
        yield stop
    finally:
        restore()


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
    stop: threading.Event | None = None,
) -> list[TenantOutcome[T]]:
    """Run `work` for every tenant, at most `workers` at once, carrying on past failures.

    `what` names the work in log lines ("migration", "seeding", …). Once `stop` is set, the
    tenants not started yet are not run (outcomes with `not_run`, passed to `on_result` too).
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
            stopped = stop is not None and stop.is_set()
            outcomes[index] = _not_run(tenant) if stopped else tenant_work_run(work, tenant, what=what)
            if on_result is not None:
                on_result(outcomes[index])
        return [outcomes[index] for index in range(len(todo))]

    # Set when the loop below is left by an exception (SystemExit from a signal handler, a second
    # Ctrl-C): the pool's exit waits for every queued tenant, which must then not start.
    halted = threading.Event()

    def run(tenant: TenantInfo) -> TenantOutcome[T]:
        if halted.is_set() or (stop is not None and stop.is_set()):  # queued when the run was stopped
            return _not_run(tenant)
        try:
            return tenant_work_run(work, tenant, what=what)
        finally:
            connections.close_all()

    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix=what.replace(" ", "-")) as pool:
        futures: dict[Future[TenantOutcome[T]], int] = {pool.submit(run, tenant): i for i, tenant in runnable.items()}
        try:
            for future in as_completed(futures):
                index = futures[future]
                outcomes[index] = future.result()
                if on_result is not None:
                    on_result(outcomes[index])
        except BaseException:
            halted.set()
            pool.shutdown(wait=True, cancel_futures=True)  # the tenants in flight finish
            skipped = sum(1 for f in futures if f.cancelled() or (f.exception() is None and f.result().not_run))
            logger.warning("%s stopped: %d of %d tenants not started", what, skipped, len(todo))
            raise
    return [outcomes[index] for index in range(len(todo))]


def _not_run(tenant: TenantInfo) -> TenantOutcome[T]:
    return TenantOutcome(tenant=tenant, error=NOT_RUN, not_run=True)
