"""Writes on tenants: creation, database provisioning, migration of one or all tenants.

Every migration of a tenant through `tenant_migrate` / `tenants_migrate_all` is recorded in
the master (`TenantMigrationRun`) and moves `Tenant.schema_state` to `ready` or `failed`,
unless the tenant was changed again (marked `pending`) while it ran. Master rows are only
written from the calling thread; worker threads touch tenant databases only.

A run holds the tenant's schema lock for all of its database work, so a `running` run whose
tenant's lock another run has taken was left by a process that died: that run closes it as
failed, "Interrupted: …" (see `_run_finish`).

A successful run keeps the tenant's migration fingerprint in the master
(`tenant_migration_fingerprint`); a later run skips a ready tenant whose fingerprint equals the
code's without opening its database, unless `verify`. Any change marking the tenant pending
(subscription, upgrade, restore) clears it. A run stopped by SIGTERM/Ctrl-C closes the runs of
the tenants it did not start as `not_run`.
"""

from __future__ import annotations

import io
import logging
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum

from django.conf import settings
from django.core.management import call_command
from django.db import DEFAULT_DB_ALIAS, transaction
from django.db.models import OuterRef, Q, Subquery
from django.utils import timezone

from m3saas.engines import engine
from m3saas.exceptions import ApplicationError, ProvisioningError, ServiceUnavailableError, TenantNotFoundError
from m3saas.seeding import seeds_apply, seeds_temporary_apply, seeds_temporary_remove
from m3saas.tenancy.cache import master_cache_invalidate
from m3saas.tenancy.connections import tenant_connection_register, tenant_connection_unregister
from m3saas.tenancy.each import TenantOutcome, tenant_work_run, tenants_each
from m3saas.tenancy.info import DEFAULT_BACKUP_LIMITS, TenantInfo
from m3saas.tenancy.migrate import tenant_migrate_schema, tenant_migration_fingerprint, tenant_schema_lock
from subscriptions.models import Subscription
from subscriptions.services import subscription_create
from tenants.models import Tenant, TenantMigrationRun
from tenants.selectors import tenant_info_fresh, tenant_info_from_row, tenant_info_get, tenant_info_list_resolved

logger = logging.getLogger(__name__)

State = Tenant.SchemaState
Trigger = TenantMigrationRun.Trigger
# A claim by a request older than this is taken to be from a process that died.
AUTO_MIGRATION_CLAIM_SECONDS = 900


class Seeding(StrEnum):
    """What a migration does with seeds after the schema (as the original's /migrate suffixes)."""

    NONE = "none"
    MAIN = "main"  # insert missing main seeds, rewrite forced ones
    FORCE = "force"  # rewrite every main seed
    TEMPORARY = "temporary"  # main seeds, then the temporary seeds
    DESEED = "deseed"  # main seeds, then remove the temporary seeds


class TenantMigratingError(ServiceUnavailableError):
    code = "tenant_migrating"
    default_message = "The tenant's database is being prepared; try again shortly."


class TenantNotReadyError(ServiceUnavailableError):
    code = "tenant_not_ready"
    default_message = "The tenant's database could not be prepared; the operator has been told."


@dataclass
class TenantMigrationResult:
    tenant: str
    applied: list[str] = field(default_factory=list)
    error: str | None = None
    seconds: float = 0.0
    tenant_id: int | None = None
    seeded: bool = False
    # Earlier runs of the tenant found dead (still `running` while this run held the lock).
    interrupted: list[int] = field(default_factory=list)
    # The run was stopped before this tenant's turn (its run is closed `not_run`).
    not_run: bool = False
    # Skipped unopened: its fingerprint in the master says nothing is pending (no run recorded).
    unchanged: bool = False
    # What the tenant's fingerprint is once this run succeeds.
    fingerprint: str = ""

    @property
    def ok(self) -> bool:
        return self.error is None


def tenant_create(
    *,
    name: str,
    user: str,
    password: str,
    id: int | None = None,
    per_day_backups: int = DEFAULT_BACKUP_LIMITS.per_day,
    max_backups: int = DEFAULT_BACKUP_LIMITS.max,
    provision: bool | None = None,
    server: str | None = None,
) -> Tenant:
    """Validate, place and save a tenant; provision, migrate and seed its database when `provision`
    (default: AUTO_MIGRATION). Raises `ProvisioningError` when that fails (the row stays, pending
    a rerun).

    `server` names its database server; None: the open server with the most free capacity
    (`tenants.servers.server_place`). No server can take it: `ServerUnavailableError`, no row saved.
    """
    tenant = Tenant(
        id=id, name=name, user=user, password=password, per_day_backups=per_day_backups, max_backups=max_backups
    )
    tenant.full_clean(exclude=["server"])  # the server is checked by the placement, in `save()`
    tenant.server_id = server or None
    with transaction.atomic(using=DEFAULT_DB_ALIAS):
        tenant.save()
    if settings.AUTO_MIGRATION if provision is None else provision:
        result = tenant_migrate(tenant=tenant_info_from_row(tenant), seed=Seeding.MAIN, trigger=Trigger.CODE)
        if not result.ok:
            raise ProvisioningError(f"Tenant {tenant.name} was saved but its database is not ready: {result.error}")
    return tenant


def tenant_provision(*, tenant: TenantInfo) -> list[str]:
    """Create the tenant's database and user if missing and apply its module migrations.

    Idempotent: a second call changes nothing and returns no migrations. Marks the tenant's
    schema ready unless it changed meanwhile; seeds are not applied (see `tenant_migrate`).
    """
    started = timezone.now()
    with tenant_schema_lock(tenant):
        applied = _schema_bring_up(tenant)
    _schema_state_set(tenant_id=tenant.id, state=State.READY, unless_changed_since=started)
    return applied


def tenant_database_drop(*, tenant: TenantInfo) -> None:
    """Drop the tenant's database and user, and forget its connection alias. Data is lost."""
    tenant_connection_unregister(tenant.alias)
    engine().database_drop(tenant)


def tenant_migrate(
    *, tenant: TenantInfo, seed: Seeding = Seeding.NONE, trigger: str = Trigger.COMMAND
) -> TenantMigrationResult:
    """Provision, migrate and optionally seed one tenant; record the run; never raises for the
    tenant's own failure (it is in the result and in the run)."""
    open_runs = _runs_open(tenant_ids=[tenant.id])
    run = _run_start(tenant_id=tenant.id, trigger=trigger)
    result = TenantMigrationResult(tenant=tenant.name, tenant_id=tenant.id, fingerprint=_fingerprint(tenant))
    work = _migration_work(result, seed, open_runs.get(tenant.id, []))
    _result_finish(result, tenant_work_run(work, tenant, what="migration"))
    _run_finish(run, result)
    return result


def tenants_migrate_all(
    *,
    tenants: Iterable[TenantInfo] | None = None,
    workers: int | None = None,
    on_result: Callable[[TenantMigrationResult], None] | None = None,
    seed: Seeding = Seeding.NONE,
    trigger: str = Trigger.COMMAND,
    failed_only: bool = False,
    pending_only: bool = False,
    on_start: Callable[[int], None] | None = None,
    verify: bool = False,
    stop: threading.Event | None = None,
) -> list[TenantMigrationResult]:
    """Migrate every tenant (or `tenants`, or those whose last run failed or never finished,
    or those pending) with at most `workers` in parallel, carrying on past failures.

    `on_start` gets the number of tenants; results come back to `on_result` (in this thread) as
    tenants finish; the returned list keeps tenant order, unresolvable tenants first. Without
    `verify` (which opens every database), a ready tenant whose fingerprint is the code's is
    skipped (`unchanged`) unless seeds are applied. Once `stop` is set, tenants not started yet
    are not run (`not_run`).
    """
    unresolved: list[tuple[TenantInfo, str]]
    if tenants is not None:
        todo, unresolved = list(tenants), []
    else:
        todo, unresolved = tenant_info_list_resolved(
            tenants_to_migrate(failed_only=failed_only, pending_only=pending_only)
        )
    if on_start:
        on_start(len(todo) + len(unresolved))

    def finish(run: TenantMigrationRun, result: TenantMigrationResult) -> None:
        _run_finish(run, result)
        if on_result:
            on_result(result)

    failed_early: list[TenantMigrationResult] = []
    for bare, error in unresolved:
        result = tenant_migration_failure_record(tenant_id=bare.id, name=bare.name, error=error, trigger=trigger)
        if on_result:
            on_result(result)
        failed_early.append(result)
    results = {
        info.id: TenantMigrationResult(tenant=info.name, tenant_id=info.id, fingerprint=_fingerprint(info))
        for info in todo
    }
    if not verify and seed == Seeding.NONE:
        _unchanged_mark(todo, results)
    for info in todo:
        if results[info.id].unchanged and on_result:
            on_result(results[info.id])
    opened = [info for info in todo if not results[info.id].unchanged]
    open_runs = _runs_open(tenant_ids=[info.id for info in opened])
    with transaction.atomic(using=DEFAULT_DB_ALIAS):
        runs = {info.id: _run_start(tenant_id=info.id, trigger=trigger) for info in opened}

    def work(tenant: TenantInfo) -> None:
        _migration_work(results[tenant.id], seed, open_runs.get(tenant.id, []))(tenant)

    def done(outcome: TenantOutcome[None]) -> None:
        result = results[outcome.tenant.id]
        _result_finish(result, outcome)
        if outcome.not_run:
            result.not_run = True
            _run_not_run(runs[outcome.tenant.id], result)
            if on_result:
                on_result(result)
            return
        finish(runs[outcome.tenant.id], result)

    try:
        tenants_each(
            work,
            tenants=opened,
            workers=max(1, workers or settings.TENANT_MIGRATION_WORKERS),
            on_result=done,
            what="migration",
            stop=stop,
        )
    except BaseException:  # e.g. SystemExit from a signal handler: no run of this batch stays `running`
        ids = [run.pk for run in runs.values()]
        for start in range(0, len(ids), 500):  # bounded IN lists
            TenantMigrationRun.objects.filter(
                pk__in=ids[start : start + 500], status=TenantMigrationRun.Status.RUNNING
            ).update(
                status=TenantMigrationRun.Status.NOT_RUN,
                finished_at=timezone.now(),
                error="Stopped: the process was interrupted before this tenant's result was recorded.",
            )
        raise
    return failed_early + [results[info.id] for info in todo]


def tenants_auto_migrate_pending(*, trigger: str = Trigger.CODE) -> list[TenantMigrationResult]:
    """With AUTO_MIGRATION on: provision, migrate and seed every tenant whose schema is pending."""
    if not settings.AUTO_MIGRATION:
        return []
    return tenants_migrate_all(pending_only=True, seed=Seeding.MAIN, trigger=trigger)


def tenant_auto_migrate(*, tenant: TenantInfo) -> TenantInfo:
    """For a request: with AUTO_MIGRATION on, bring a pending tenant up to date, once.

    One request claims the work (a conditional update in the master); the others get
    `TenantMigratingError` (503) meanwhile. A failure is recorded, marks the tenant `failed`
    (not retried by requests: `migrate_tenants --failed` reruns it) and raises
    `TenantNotReadyError`. Ready and failed tenants return at once, without a query.
    """
    if tenant.schema_state not in (State.PENDING, State.MIGRATING) or not settings.AUTO_MIGRATION:
        return tenant
    claimed_at = timezone.now()
    stale = claimed_at - timedelta(seconds=AUTO_MIGRATION_CLAIM_SECONDS)
    claimed = (
        Tenant.objects.filter(pk=tenant.id)
        .filter(Q(schema_state=State.PENDING) | Q(schema_state=State.MIGRATING, schema_state_at__lt=stale))
        .update(schema_state=State.MIGRATING, schema_state_at=claimed_at)
    )
    if not claimed:
        state = Tenant.objects.filter(pk=tenant.id).values_list("schema_state", flat=True).first()
        if state is None:
            raise TenantNotFoundError()
        if state == State.MIGRATING:
            # Someone else's claim: every tenant's cache stays (no invalidation on a poll).
            raise TenantMigratingError()
        master_cache_invalidate()  # this process cached a state that has changed since
        return tenant_info_get(tenant_id=tenant.id)
    master_cache_invalidate()
    logger.info("auto-migrating tenant %s on its first request", tenant.name)
    # Read again after the claim: the cached view may predate a subscription change.
    fresh = tenant_info_fresh(tenant_id=tenant.id)
    result = tenant_migrate(tenant=fresh, seed=Seeding.MAIN, trigger=Trigger.REQUEST)
    if not result.ok:
        raise TenantNotReadyError()
    return tenant_info_get(tenant_id=tenant.id)


def tenant_ready_ensure(*, tenant: TenantInfo) -> TenantInfo:
    """For a request: the tenant, if it may be served now; raises a 503 error otherwise.

    Only a `ready` tenant is served: a pending one (never provisioned, or its modules changed)
    is first brought up to date when AUTO_MIGRATION is on (`tenant_auto_migrate`), and with it
    off waits for an operator's `migrate_tenants`; a failed one waits for `migrate_tenants
    --failed`. Serving any of them would reach a database not (yet) proven the tenant's, or
    tables that are missing.
    """
    tenant = tenant_auto_migrate(tenant=tenant)
    if tenant.schema_state == State.READY:
        return tenant
    if tenant.schema_state == State.MIGRATING:
        raise TenantMigratingError()
    if tenant.schema_state == State.FAILED:
        raise TenantNotReadyError()
    raise TenantNotReadyError("The tenant's database has not been prepared yet; the operator must migrate it.")


def tenant_serves_legacy_mark(*, tenant: TenantInfo) -> bool:
    """Whether a legacy owner mark (tenant id only) on the tenant's database is taken as this
    installation's: only when this master has been serving the tenant (it is ready, or a
    migration of it succeeded here). Another installation's new tenant is neither."""
    if tenant.schema_state == State.READY:
        return True
    return TenantMigrationRun.objects.filter(tenant_id=tenant.id, status=TenantMigrationRun.Status.OK).exists()


def tenant_schema_ready_keep(*, tenant_id: int, switched_at: datetime) -> None:
    """After an upgrade that migrated everything itself, undo the pending mark its switch made.

    With AUTO_MIGRATION on the mark stays (the next request applies the new version's seeds, as
    before); with it off nothing else would make the tenant ready and its requests would answer
    503. A pending mark from before the switch (another change) is kept.
    """
    if settings.AUTO_MIGRATION:
        return
    changed = Tenant.objects.filter(pk=tenant_id, schema_state=State.PENDING, schema_state_at__gte=switched_at).update(
        schema_state=State.READY, schema_state_at=timezone.now()
    )
    if changed:
        master_cache_invalidate()


def tenant_migrate_if_pending(*, tenant_id: int, trigger: str = Trigger.CODE) -> TenantMigrationResult | None:
    """With AUTO_MIGRATION on and the tenant's schema pending: provision, migrate and seed it now.

    For the admin's and the services' save paths, after the change is committed.
    """
    if not settings.AUTO_MIGRATION:
        return None
    row = Tenant.objects.filter(pk=tenant_id, schema_state=State.PENDING).first()
    if row is None:
        return None
    try:
        info = tenant_info_from_row(row)
    except ApplicationError as exc:
        return tenant_migration_failure_record(tenant_id=row.id, name=row.name, error=exc.message, trigger=trigger)
    return tenant_migrate(tenant=info, seed=Seeding.MAIN, trigger=trigger)


def tenant_subscribe(*, tenant_id: int, module: str, version: int = 1) -> Subscription:
    """Subscribe a tenant to `module` at major `version` (`subscription_create`); with AUTO_MIGRATION
    on, its database is migrated and seeded at once (`ProvisioningError` if that fails; the
    subscription stays and the failure is recorded)."""
    subscription = subscription_create(tenant_id=tenant_id, module=module, version=version)
    result = tenant_migrate_if_pending(tenant_id=tenant_id, trigger=Trigger.CODE)
    if result is not None and not result.ok:
        raise ProvisioningError(f"Subscribed, but the tenant's database is not ready: {result.error}")
    return subscription


def tenants_schema_mark_pending(*, tenant_ids: Iterable[int]) -> int:
    """Mark tenants' schemas pending (their modules changed); returns how many changed state."""
    ids = sorted(set(tenant_ids))
    if not ids:
        return 0
    changed = Tenant.objects.filter(pk__in=ids).update(
        schema_state=State.PENDING, schema_state_at=timezone.now(), migration_fingerprint=""
    )
    if changed:
        master_cache_invalidate()
    return changed


def master_migrate(*, seed: Seeding = Seeding.MAIN) -> None:
    """Migrate the master database, apply its seeds, then (AUTO_MIGRATION) the pending tenants.

    Raises the first error; tenants that fail are recorded in their runs, not raised.
    """

    call_command("migrate", database=DEFAULT_DB_ALIAS, interactive=False, verbosity=0, stdout=io.StringIO())
    _seeds_run(DEFAULT_DB_ALIAS, seed)
    tenants_auto_migrate_pending(trigger=Trigger.HTTP)


# --- internals ------------------------------------------------------------------------------


def _schema_bring_up(tenant: TenantInfo) -> list[str]:
    """Create the database if missing and migrate it; the caller holds the tenant's schema lock."""
    engine().database_create(tenant, legacy_mark_adoptable=lambda: tenant_serves_legacy_mark(tenant=tenant))
    tenant_connection_register(tenant)
    return tenant_migrate_schema(tenant, locked=True)


def _seeds_run(alias: str, seed: Seeding) -> bool:
    if seed == Seeding.NONE:
        return False

    seeds_apply(alias=alias, force=True if seed == Seeding.FORCE else None)
    if seed == Seeding.TEMPORARY:
        seeds_temporary_apply(alias=alias)
    elif seed == Seeding.DESEED:
        seeds_temporary_remove(alias=alias)
    return True


def _migration_work(result: TenantMigrationResult, seed: Seeding, open_runs: list[int]) -> Callable[[TenantInfo], None]:
    """The tenant-database part of a migration, filling `result` as it goes (kept on a failure).

    `open_runs`: the tenant's runs still `running` before this one started.
    """

    def work(tenant: TenantInfo) -> None:
        # Held to the end: a live run always holds it, so the open runs of a tenant whose lock
        # this run holds belong to processes that died.
        with tenant_schema_lock(tenant):
            result.interrupted = open_runs
            result.applied = _schema_bring_up(tenant)
            result.seeded = _seeds_run(tenant.alias, seed)

    return work


def _result_finish(result: TenantMigrationResult, outcome: TenantOutcome[None]) -> None:
    result.error = outcome.error
    result.seconds = outcome.seconds


def _fingerprint(tenant: TenantInfo) -> str:
    return tenant_migration_fingerprint(tenant.app_labels)


def _unchanged_mark(todo: list[TenantInfo], results: dict[int, TenantMigrationResult]) -> None:
    """Mark the ready tenants whose fingerprint in the master is the code's: nothing to apply."""
    ready = [info.id for info in todo if info.schema_state == State.READY]
    kept: dict[int, str] = {}
    for start in range(0, len(ready), 1000):  # bounded IN lists
        rows = Tenant.objects.filter(pk__in=ready[start : start + 1000]).exclude(migration_fingerprint="")
        kept.update(rows.values_list("id", "migration_fingerprint"))
    for tenant_id, fingerprint in kept.items():
        if fingerprint == results[tenant_id].fingerprint:
            results[tenant_id].unchanged = True


def _run_not_run(run: TenantMigrationRun, result: TenantMigrationResult) -> None:
    """Close the run of a tenant the stopped run did not start; its schema state is left as it was."""
    TenantMigrationRun.objects.filter(pk=run.pk, status=TenantMigrationRun.Status.RUNNING).update(
        status=TenantMigrationRun.Status.NOT_RUN, finished_at=timezone.now(), error=result.error or ""
    )


def _run_start(*, tenant_id: int, trigger: str) -> TenantMigrationRun:
    return TenantMigrationRun.objects.create(tenant_id=tenant_id, trigger=trigger)


def tenant_migration_failure_record(*, tenant_id: int, name: str, error: str, trigger: str) -> TenantMigrationResult:
    """Record a run of a tenant that failed before its migration could start (e.g. its modules
    do not resolve): the run in the ledger, the tenant `failed`."""
    result = TenantMigrationResult(tenant=name, tenant_id=tenant_id, error=error)
    _run_finish(_run_start(tenant_id=tenant_id, trigger=trigger), result)
    return result


def _runs_open(*, tenant_ids: list[int]) -> dict[int, list[int]]:
    """The ids of the tenants' runs still `running`, by tenant."""
    runs: dict[int, list[int]] = {}
    rows = TenantMigrationRun.objects.filter(tenant_id__in=tenant_ids, status=TenantMigrationRun.Status.RUNNING)
    for tenant_id, run_id in rows.order_by("id").values_list("tenant_id", "id"):
        runs.setdefault(tenant_id, []).append(run_id)
    return runs


def _run_finish(run: TenantMigrationRun, result: TenantMigrationResult) -> None:
    if result.interrupted:
        TenantMigrationRun.objects.filter(pk__in=result.interrupted, status=TenantMigrationRun.Status.RUNNING).update(
            status=TenantMigrationRun.Status.FAILED,
            finished_at=timezone.now(),
            error=f"Interrupted: the process running this migration stopped before it finished "
            f"(found by run {run.pk}, which then held the tenant's schema lock).",
        )
    ok = result.ok
    TenantMigrationRun.objects.filter(pk=run.pk).update(
        status=TenantMigrationRun.Status.OK if ok else TenantMigrationRun.Status.FAILED,
        finished_at=timezone.now(),
        applied=result.applied,
        seeded=result.seeded,
        error=result.error or "",
    )
    # Before the state: the state's change moves schema_state_at past the run's start.
    Tenant.objects.filter(pk=run.tenant_id, schema_state_at__lte=run.started_at).update(
        migration_fingerprint=result.fingerprint if ok else ""
    )
    _schema_state_set(
        tenant_id=run.tenant_id, state=State.READY if ok else State.FAILED, unless_changed_since=run.started_at
    )


def _schema_state_set(*, tenant_id: int, state: str, unless_changed_since: datetime) -> None:
    # A tenant marked pending after the run started keeps pending: the run may have missed it.
    changed = (
        Tenant.objects.filter(pk=tenant_id, schema_state_at__lte=unless_changed_since)
        .exclude(schema_state=state)
        .update(schema_state=state, schema_state_at=timezone.now())
    )
    if changed:
        master_cache_invalidate()


def tenants_to_migrate(*, failed_only: bool, pending_only: bool) -> list[Tenant]:
    """The tenant rows a run over all tenants takes: every one, or those pending, or those whose
    last run failed (or never finished)."""
    rows = Tenant.objects.order_by("id")
    if pending_only:
        rows = rows.filter(schema_state=State.PENDING)
    if failed_only:
        latest = TenantMigrationRun.objects.filter(tenant=OuterRef("pk")).order_by("-started_at", "-id")
        rows = rows.annotate(last_run_status=Subquery(latest.values("status")[:1])).filter(
            last_run_status__in=[
                TenantMigrationRun.Status.FAILED,
                TenantMigrationRun.Status.RUNNING,
                TenantMigrationRun.Status.NOT_RUN,
            ]
        )
    return list(rows)
