"""Moving a tenant's database to another server: freeze, copy, verify, switch, retire.

`tenant_move` holds the tenant's lock (`Engine.schema_lock`: a row lock in the master, released
when its process dies) from before the freeze to the end, and records each step it begins in a
`TenantMove` row:

1. freeze: `Tenant.moving` is set (cached as `TenantInfo.moving`, invalidated on commit: the next
   write in every process answers 503 `tenant_moving` with `Retry-After`; reads go on), then the
   database's own freeze: the tenant user keeps read privileges on the source and its open
   sessions are ended, so a request that read the tenant before the flag cannot write after the
   snapshot (its write is refused, and answered 503 too: `m3saas.api`).
2. copy: the target database, user and grant made as provisioning makes them (with the owner
   mark); a database already there must carry the tenant's mark (a killed run's half copy, or the
   kept source of an earlier move away): it is emptied and copied again. Then a consistent
   snapshot of the source is streamed into it.
3. verify: per table the row count and checksum, and the views, routines and triggers, equal on
   both sides; anything else fails the move.
4. switch: `Tenant.server` = target and `moving` cleared in one master transaction; the cache is
   invalidated on commit and a tenant alias's signature carries its server, so every process
   connects to the target at its next request.
5. retire: the source user loses every privilege (a process still on the old entry gets a 503 and
   retries: no stale reads); the source database is kept until `--drop-source` (a backup first).

A failure before the switch thaws the source, clears the flag and drops the target copy if this
move made it: the tenant stays where it was. A killed move leaves the flag and the freeze: the
next write to the tenant finds the lock free (its holder died), closes the move `interrupted`
and gives the writes back on the source (checked at most once per `LIVENESS_CHECK_SECONDS` per
process and tenant); a rerun completes it (copying again); `--abort` ends it and drops its copy.
A tenant that is not moving costs nothing more: the check reads its cached `TenantInfo` only.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connections, transaction
from django.utils import timezone

from m3saas.access import READ_METHODS
from m3saas.engines import MoveError, engine
from m3saas.exceptions import ApplicationError, TenantMovingError
from m3saas.servers import ServerUnknownError, server_config, server_configs
from m3saas.tenancy.cache import master_cache_invalidate
from m3saas.tenancy.connections import is_tenant_alias, tenant_connection_register
from m3saas.tenancy.info import TenantInfo
from tenants.models import DatabaseServer, Tenant, TenantMove
from tenants.selectors import tenant_info_fresh, tenant_info_get
from tenants.servers import server_list, server_place, tenants_on_server

logger = logging.getLogger(__name__)

Step = TenantMove.Step
Status = TenantMove.Status
# How often (seconds) one process asks whether a moving tenant's mover is still alive, on a write.
LIVENESS_CHECK_SECONDS = 2.0
# tenant id -> when this process may ask again (monotonic seconds); only tenants seen moving.
_liveness_next: dict[int, float] = {}


class MoveVerificationError(MoveError):
    code = "move_mismatch"
    default_message = "The copy on the target server differs from the source."


@dataclass
class TenantMoveResult:
    tenant: str
    tenant_id: int
    source: str
    target: str
    move_id: int | None = None
    error: str | None = None
    seconds: float = 0.0
    # A move left running by a process that died, completed by this run.
    resumed: bool = False
    # The backup of the source taken before `drop_source` dropped it.
    backup: Path | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


# --- the move ------------------------------------------------------------------------------


def tenant_move(
    *,
    tenant: TenantInfo,
    target: str,
    drop_source: bool = False,
    on_step: Callable[[str], None] | None = None,
) -> TenantMoveResult:
    """Move the tenant's database to the server `target` (steps: the module docstring).

    Raises `MoveError` when the move is refused (one server, unknown, same, closed or full target,
    another process moving it) or fails (then the tenant is back on its source, writing). A move
    of this tenant left running by a dead process is completed. `on_step(step)` is called as each
    step begins (after it is recorded).
    """
    started = time.monotonic()
    adapter = engine()
    _servers_check(target)
    with _move_lock(tenant):
        row = Tenant.objects.get(pk=tenant.id)
        move = _move_running(tenant.id)
        resumed = move is not None
        if move is not None and move.step != Step.RETIRE and move.target != target:
            _move_end(move, status=Status.INTERRUPTED, error=f"Replaced by a move to {target!r}.", drop_target=True)
            move, resumed = None, False
        if move is None or move.step != Step.RETIRE:
            try:
                _target_check(row=row, target=target)
            except MoveError as exc:
                if move is not None:  # the dead move cannot go on: its tenant writes again
                    _move_end(move, status=Status.INTERRUPTED, error=exc.message, drop_target=move.created_target)
                raise
            if move is None:
                move = TenantMove.objects.create(
                    tenant_id=tenant.id,
                    source=row.server_name,
                    target=target,
                    created_target=_created_before(row, target),
                )
            _copy_and_switch(move, on_step)
        info = tenant_info_fresh(tenant_id=tenant.id)
        source = replace(info, server=move.source)
        _step(move, Step.RETIRE, on_step)
        adapter.privileges_set(source, access="none")
        TenantMove.objects.filter(pk=move.pk).update(status=Status.DONE, finished_at=timezone.now())
        result = TenantMoveResult(
            tenant=tenant.name,
            tenant_id=tenant.id,
            source=move.source,
            target=move.target,
            move_id=move.pk,
            resumed=resumed,
        )
        if drop_source:
            try:
                result.backup = _source_drop(info, move)
            except ApplicationError as exc:
                raise MoveError(
                    f"{tenant.name} was moved to {move.target!r}, but its source could not be dropped: {exc.message} "
                    f"Rerun: manage.py move_tenant {tenant.name} --drop-source"
                ) from exc
    result.seconds = time.monotonic() - started
    logger.info("tenant %s moved from %s to %s in %.1f s", tenant.name, move.source, move.target, result.seconds)
    return result


def _copy_and_switch(move: TenantMove, on_step: Callable[[str], None] | None) -> None:
    """Steps 1-4; any failure puts the tenant back on its source (writing) and raises `MoveError`."""
    adapter = engine()
    info = tenant_info_fresh(tenant_id=move.tenant_id)
    source, dest = replace(info, server=move.source), replace(info, server=move.target)
    try:
        _step(move, Step.FREEZE, on_step, moving=True)
        adapter.privileges_set(source, access="read")
        _step(move, Step.COPY, on_step)
        _target_prepare(move, dest)
        adapter.database_copy(source, dest)
        _step(move, Step.VERIFY, on_step)
        _verify(move, source, dest)
        _step(move, Step.SWITCH, on_step)
        with transaction.atomic(using=DEFAULT_DB_ALIAS):
            Tenant.objects.filter(pk=move.tenant_id).update(server_id=move.target, moving=False)
            TenantMove.objects.filter(pk=move.pk).update(step=Step.RETIRE)
            master_cache_invalidate()
        move.step = Step.RETIRE
    except BaseException as exc:
        error = exc.message if isinstance(exc, ApplicationError) else f"{type(exc).__name__}: {exc}"
        logger.warning("move of %s to %s failed at %s: %s", info.name, move.target, move.step, error)
        _move_end(move, status=Status.FAILED, error=error, drop_target=move.created_target)
        if isinstance(exc, MoveError):
            raise
        if isinstance(exc, Exception):  # e.g. a driver error: one line for the operator, logged above
            raise MoveError(f"Moving {info.name} to {move.target!r} failed: {error}") from exc
        raise


def _step(move: TenantMove, step: str, on_step: Callable[[str], None] | None, *, moving: bool = False) -> None:
    with transaction.atomic(using=DEFAULT_DB_ALIAS):
        TenantMove.objects.filter(pk=move.pk).update(step=step)
        if moving:
            Tenant.objects.filter(pk=move.tenant_id).update(moving=True)
            master_cache_invalidate()
    move.step = step
    if on_step is not None:
        on_step(step)


def _target_prepare(move: TenantMove, dest: TenantInfo) -> None:
    """The tenant's database, user and grant on the target, as provisioning makes them, and empty.

    `created_target` is recorded before the database is created, so a failure (or an abort after a
    kill) drops only what a move of this tenant made. An existing database must carry the
    tenant's owner mark (`database_create` refuses any other before changing anything).
    """
    adapter = engine()
    existed = adapter.database_exists(dest)
    if not existed and not move.created_target:
        TenantMove.objects.filter(pk=move.pk).update(created_target=True)
        move.created_target = True
    adapter.database_create(dest)
    if existed:
        adapter.database_clear(dest)


def _verify(move: TenantMove, source: TenantInfo, dest: TenantInfo) -> None:
    adapter = engine()
    expected, found = adapter.database_fingerprint(source), adapter.database_fingerprint(dest)
    compared: dict[str, object] = dict(found) if found == expected else {"source": expected, "target": found}
    TenantMove.objects.filter(pk=move.pk).update(verified=compared)
    if found != expected:
        differ = sorted(k for k in expected.keys() | found.keys() if expected.get(k) != found.get(k))
        shown = "; ".join(f"{k}: {expected.get(k, 'missing')} / {found.get(k, 'missing')}" for k in differ[:5])
        raise MoveVerificationError(
            f"The copy of {source.name} on {dest.server!r} differs from the source ({shown}): the tenant stays on "
            f"{source.server!r}."
        )


def _created_before(row: Tenant, target: str) -> bool:
    """Whether the target database of a new move was made by this tenant's previous, interrupted
    move to the same server (so that this one drops it on failure too)."""
    previous = TenantMove.objects.filter(tenant_id=row.pk).order_by("-started_at", "-id").first()
    return bool(
        previous is not None
        and previous.status == Status.INTERRUPTED
        and previous.target == target
        and previous.created_target
    )


def _servers_check(target: str) -> None:
    """Refuse, before anything is locked: a single server, or a target the config does not name."""
    config = settings.M3SAAS_CONFIG
    if len(server_configs()) < 2:
        raise MoveError(
            f"Only one database server is configured ({config.source} has no tenants.servers; SQLite has one "
            "implicit server): there is no other server to move a tenant to."
        )
    try:
        server_config(target)
    except ServerUnknownError:
        raise MoveError(f"No database server named {target!r} in {config.source} (tenants.servers).") from None


def _target_check(*, row: Tenant, target: str) -> None:
    """Refuse, before anything changes: the tenant's own server, or one that takes no tenants
    (draining, closed, full, not configured)."""
    if row.server_name == target:
        raise MoveError(f"Tenant {row.name} is already on server {target!r}.")
    summary = next((s for s in server_list() if s.name == target), None)
    reason = "it is not in the registry" if summary is None else summary.refusal()
    if reason:
        raise MoveError(f"Cannot move {row.name} to {target!r}: {reason}.")


@contextmanager
def _move_lock(tenant: TenantInfo) -> Iterator[None]:
    with engine().schema_lock(tenant, timeout=0) as acquired:
        if not acquired:
            raise MoveError(
                f"Tenant {tenant.name} is being moved or migrated by another process; try again when it is done."
            )
        yield


def _move_running(tenant_id: int) -> TenantMove | None:
    return TenantMove.objects.filter(tenant_id=tenant_id, status=Status.RUNNING).order_by("-started_at", "-id").first()


def _move_end(move: TenantMove, *, status: str, error: str, drop_target: bool) -> None:
    """End a move that did not switch: writes back on the source, the flag cleared, the move closed
    with `status`; its target copy dropped when `drop_target`. Idempotent."""
    adapter = engine()
    info = tenant_info_fresh(tenant_id=move.tenant_id)
    # First the grants: should this fail (the source is down), the flag keeps writes refused.
    adapter.privileges_set(replace(info, server=move.source), access="write")
    with transaction.atomic(using=DEFAULT_DB_ALIAS):
        Tenant.objects.filter(pk=move.tenant_id, moving=True).update(moving=False)
        TenantMove.objects.filter(pk=move.pk, status=Status.RUNNING).update(
            status=status, error=error[:4000], finished_at=timezone.now()
        )
        master_cache_invalidate()
    if drop_target and info.server != move.target:
        try:
            adapter.database_drop(replace(info, server=move.target))
        except ApplicationError as exc:
            logger.warning("the target copy of %s on %s could not be dropped: %s", info.name, move.target, exc.message)
            TenantMove.objects.filter(pk=move.pk).update(
                error=f"{error[:3000]} (its copy on {move.target!r} is kept: {exc.message})"
            )
        else:
            TenantMove.objects.filter(pk=move.pk).update(created_target=False)


# --- after a kill: abort, and the writes' liveness check ---------------------------------------


def tenant_move_abort(*, tenant: TenantInfo) -> TenantMove:
    """End the tenant's move that a dead process left before its switch: writes back on the source,
    and the target copy dropped if a move of this tenant made it. Raises `MoveError` if a live
    process still moves it, if nothing is to abort, or if it had switched already (rerun instead).
    """
    with _move_lock(tenant):
        move = _move_running(tenant.id) or (
            TenantMove.objects.filter(tenant_id=tenant.id, status=Status.INTERRUPTED, created_target=True)
            .order_by("-started_at", "-id")
            .first()
        )
        if move is None:
            raise MoveError(f"Tenant {tenant.name} has no interrupted move to abort.")
        if move.status == Status.RUNNING and move.step == Step.RETIRE:
            raise MoveError(
                f"The move of {tenant.name} to {move.target!r} had switched already: rerun "
                f"`manage.py move_tenant {tenant.name} --to {move.target}` to complete it."
            )
        _move_end(
            move, status=Status.INTERRUPTED, error="Aborted (move_tenant --abort).", drop_target=move.created_target
        )
        move.refresh_from_db()
        return move


def tenant_moving_check(*, tenant: TenantInfo, method: str) -> TenantInfo:
    """For a request: the tenant, unless it is moving and this is a write (`TenantMovingError`, 503).

    No query unless the tenant is moving and the method writes. Then, at most once per
    `LIVENESS_CHECK_SECONDS` in this process, whether the mover is alive: if its lock is free (its
    process died), its move is closed `interrupted`, the source given its writes back, and the
    request goes on.
    """
    if not tenant.moving or method.upper() in READ_METHODS:
        return tenant
    now = time.monotonic()
    if _liveness_next.get(tenant.id, 0.0) > now:
        raise TenantMovingError()
    _liveness_next[tenant.id] = now + LIVENESS_CHECK_SECONDS
    if not _move_end_if_dead(tenant):
        raise TenantMovingError()
    if is_tenant_alias(tenant.alias):  # its session, ended by the thaw, reconnects with the writes given back
        connections[tenant.alias].close()
    fresh = tenant_info_get(tenant_id=tenant.id)
    if fresh.moving:
        raise TenantMovingError()
    return fresh


def _move_end_if_dead(tenant: TenantInfo) -> bool:
    """End the tenant's move if no live process holds its lock; whether it was ended (or over)."""
    with engine().schema_lock(tenant, timeout=0) as acquired:
        if not acquired:
            return False
        move = _move_running(tenant.id)
        if move is not None and move.step != Step.RETIRE:
            logger.warning("tenant %s: its move to %s was found dead at step %s", tenant.name, move.target, move.step)
            _move_end(
                move,
                status=Status.INTERRUPTED,
                error=f"Interrupted: the process moving it stopped at step {move.step}; a write found it dead and "
                "gave the writes back on the source. Rerun move_tenant to move it.",
                drop_target=False,
            )
        elif Tenant.objects.filter(pk=tenant.id, moving=True).exists():
            # A flag without a running move (set by hand, or its row deleted): writes back on its server.
            engine().privileges_set(tenant_info_fresh(tenant_id=tenant.id), access="write")
            Tenant.objects.filter(pk=tenant.id).update(moving=False)
        master_cache_invalidate()
        return True


# --- the kept source ------------------------------------------------------------------------


def tenant_move_source_drop(*, tenant: TenantInfo) -> tuple[TenantMove, Path]:
    """Back up the source database kept by the tenant's last completed move, then drop it (and its
    user on that server). Returns the move and the backup file."""
    move = (
        TenantMove.objects.filter(tenant_id=tenant.id, status=Status.DONE, source_dropped_at__isnull=True)
        .order_by("-started_at", "-id")
        .first()
    )
    if move is None:
        raise MoveError(f"Tenant {tenant.name} has no kept source database to drop (no completed move keeps one).")
    with _move_lock(tenant):
        return move, _source_drop(tenant_info_fresh(tenant_id=tenant.id), move)


def _source_drop(info: TenantInfo, move: TenantMove) -> Path:
    from tenants.backups import backup_create, backup_target_tenant

    if info.server == move.source:
        raise MoveError(
            f"Tenant {info.name} is on {move.source!r} again: its database there is the one it uses, not a kept source."
        )
    source = replace(info, server=move.source)
    try:
        # The backup reads the server from the tenant's alias: pointed at the source for the dump only.
        backup = backup_create(target=backup_target_tenant(tenant=source)).backup
    finally:
        tenant_connection_register(info)
    engine().database_drop(source)
    TenantMove.objects.filter(pk=move.pk).update(source_dropped_at=timezone.now())
    logger.info("tenant %s: source database on %s dropped after backup %s", info.name, move.source, backup.path)
    return backup.path


# --- draining a server ------------------------------------------------------------------------


def server_drain(
    *,
    server: str,
    drop_source: bool = False,
    on_start: Callable[[int], None] | None = None,
    on_step: Callable[[str, str], None] | None = None,
    on_result: Callable[[TenantMoveResult], None] | None = None,
) -> list[TenantMoveResult]:
    """Mark `server` draining (placement skips it) and move each of its tenants to the open server
    with the most free capacity, carrying on past failures; results in tenant order."""
    if not any(s.name == server for s in server_list()):
        raise MoveError(f"No database server named {server!r}.")
    DatabaseServer.objects.filter(name=server, state=DatabaseServer.State.OPEN).update(
        state=DatabaseServer.State.DRAINING
    )
    rows = list(Tenant.objects.filter(tenants_on_server(server)).order_by("id"))
    if on_start is not None:
        on_start(len(rows))
    results: list[TenantMoveResult] = []
    for row in rows:
        started = time.monotonic()
        result = TenantMoveResult(tenant=row.name, tenant_id=row.pk, source=server, target="")
        try:
            with transaction.atomic(using=DEFAULT_DB_ALIAS):
                result.target = server_place().name
            result = tenant_move(
                tenant=tenant_info_fresh(tenant_id=row.pk),
                target=result.target,
                drop_source=drop_source,
                on_step=_named(on_step, row.name),
            )
        except ApplicationError as exc:
            result.error = exc.message
            result.seconds = time.monotonic() - started
        results.append(result)
        if on_result is not None:
            on_result(result)
    return results


def _named(on_step: Callable[[str, str], None] | None, name: str) -> Callable[[str], None] | None:
    if on_step is None:
        return None
    return lambda step: on_step(name, step)
