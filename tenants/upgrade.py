"""Move a tenant's subscription to a new major version of a module, without losing data.

Order, so that a failure at any step leaves the tenant on the old version with its data:

1. migrate the new version's tables into the tenant database, beside the old ones (the
   tenant is migrated as a temporary `TenantInfo` holding both majors; the master keeps one
   subscription per module);
2. run the new version's data step, `modules/<name>/v<N>/upgrade.py`:
   `def upgrade(*, alias: str, from_version: int) -> None`, inside
   `transaction.atomic(using=alias)` and the tenant's context;
3. switch the subscription's version in the master, atomically (the cached tenant is
   invalidated, so requests move to the new version from then on; until then they are
   served by the old one);
4. only with `drop_old`: back the tenant database up and
   unapply the old version's migrations in that database.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from django.db import connections, transaction
from django.db.migrations.recorder import MigrationRecorder
from django.utils import timezone

from m3saas.engines import engine
from m3saas.identifiers import is_digits
from m3saas.modules.registry import module_version_get
from m3saas.modules.upgrade import UpgradeError, upgrade_step_get
from m3saas.tenancy.cache import master_cache_invalidate
from m3saas.tenancy.connections import tenant_connection_register
from m3saas.tenancy.context import use_tenant
from m3saas.tenancy.each import TenantOutcome, tenant_work_run, tenants_each
from m3saas.tenancy.info import TenantInfo
from m3saas.tenancy.migrate import tenant_migrate_schema, tenant_unmigrate_app
from subscriptions.models import Subscription
from subscriptions.selectors import dependency_graph, resolve_modules, tenant_subscriptions
from tenants.backups import backup_create, backup_target_get
from tenants.models import Tenant
from tenants.selectors import tenant_info_fresh, tenant_info_from_row
from tenants.services import tenant_schema_ready_keep, tenant_serves_legacy_mark

logger = logging.getLogger(__name__)


@dataclass
class UpgradeResult:
    tenant: str
    module: str
    to_version: int
    from_version: int | None = None
    applied: list[str] = field(default_factory=list)
    data_step: bool = False
    switched: bool = False
    backup: str | None = None
    dropped: list[str] = field(default_factory=list)
    error: str | None = None
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.error is None

    def describe(self) -> str:
        start = f"v{self.from_version}" if self.from_version is not None else "?"
        what = f"{self.tenant}: {self.module} {start} → v{self.to_version}"
        if self.error is not None:
            state = f"now on v{self.to_version}" if self.switched else f"still on {start}"
            return f"{what}: FAILED ({state}): {self.error}"
        if self.switched:
            parts = [f"{len(self.applied)} migration(s) applied", "data step run" if self.data_step else "no data step"]
        else:
            parts = ["already on that version"]
        if self.dropped:
            parts.append(f"old version dropped ({len(self.dropped)} migration(s) unapplied)")
        elif self.switched:
            parts.append(f"v{self.from_version} tables kept")
        if self.backup:
            parts.append(f"backup {self.backup}")
        return f"{what}: OK ({', '.join(parts)})"


def _both_versions(tenant: TenantInfo, new_modules: list[tuple[str, int]]) -> TenantInfo:
    """`tenant` with the modules it will have added after the ones it has (old majors kept)."""
    added = tuple(m for m in new_modules if m not in tenant.modules)
    return replace(tenant, modules=(*tenant.modules, *added))


def _applied_versions(tenant: TenantInfo, module: str) -> set[int]:
    """Majors of `module` with migrations recorded in the tenant database."""
    alias = tenant_connection_register(tenant)
    applied = MigrationRecorder(connections[alias]).applied_migrations()
    prefix = f"{module}_v"
    return {
        int(label[len(prefix) :])
        for label, _ in applied
        if label.startswith(prefix) and is_digits(label[len(prefix) :])
    }


def _backup(tenant: TenantInfo) -> str:
    """Back the tenant database up; returns the file written."""
    made = backup_create(target=backup_target_get(tenant_name=tenant.name))
    return str(made.backup.path)


def _drop_versions(tenant: TenantInfo, module: str, majors: list[int], result: UpgradeResult) -> None:
    droppable = [m for m in majors if module_version_get(module, m) is not None]
    if not droppable:
        return
    result.backup = _backup(tenant)
    for major in sorted(droppable):
        with_old = replace(tenant, modules=(*tenant.modules, (module, major)))
        result.dropped += tenant_unmigrate_app(with_old, f"{module}_v{major}")


def subscription_upgrade(
    *,
    tenant: TenantInfo,
    module: str,
    to_version: int,
    drop_old: bool = False,
    result: UpgradeResult | None = None,
) -> UpgradeResult:
    """Move `tenant`'s subscription to `module` to major `to_version`; raises on failure.

    A tenant already on `to_version` is left as it is (with `drop_old`, older versions'
    tables still present are dropped).
    """
    result = result or UpgradeResult(tenant=tenant.name, module=module, to_version=to_version)
    tenant = tenant_info_fresh(tenant_id=tenant.id)
    subscription = Subscription.objects.filter(tenant_id=tenant.id, module__name=module).first()
    if subscription is None:
        raise UpgradeError(f"Tenant {tenant.name} has no subscription to module '{module}'.")
    from_version = result.from_version = subscription.version
    if module_version_get(module, to_version) is None:
        raise UpgradeError(
            f"Module '{module}' has no version v{to_version} (no folder modules/{module}/v{to_version})."
        )
    if to_version < from_version:
        raise UpgradeError(
            f"Tenant {tenant.name} is on {module} v{from_version}: moving back to v{to_version} is not supported."
        )
    if to_version == from_version:
        if drop_old:
            older = sorted(m for m in _applied_versions(tenant, module) if m != to_version)
            _drop_versions(tenant, module, older, result)
        return result

    roots = [
        (name, to_version if name == module else major) for name, major in tenant_subscriptions(tenant_id=tenant.id)
    ]
    new_modules = resolve_modules(roots, dependency_graph())  # raises when a dependency needs the old major
    both = _both_versions(tenant, new_modules)
    alias = both.alias

    engine().database_create(both, legacy_mark_adoptable=lambda: tenant_serves_legacy_mark(tenant=both))
    result.applied = tenant_migrate_schema(both)

    step = upgrade_step_get(module, to_version)
    if step is not None:
        with use_tenant(both), transaction.atomic(using=alias):
            step(alias=alias, from_version=from_version)
        result.data_step = True

    switch_started = timezone.now()
    with transaction.atomic(using="default"):
        row = Subscription.objects.select_for_update().get(pk=subscription.pk)
        if row.version != from_version:
            raise UpgradeError(f"The subscription changed to v{row.version} meanwhile; nothing switched.")
        row.version = to_version
        row.save(update_fields=["version"])
        # Other processes' caches drop the old modules only once the switch is committed.
        transaction.on_commit(master_cache_invalidate, using="default")
    result.switched = True
    if tenant.schema_state == Tenant.SchemaState.READY:
        tenant_schema_ready_keep(tenant_id=tenant.id, switched_at=switch_started)
    logger.info("tenant %s moved from %s v%s to v%s", tenant.name, module, from_version, to_version)

    if drop_old:
        _drop_versions(tenant_info_fresh(tenant_id=tenant.id), module, [from_version], result)
    return result


def subscription_upgrade_safe(
    *, tenant: TenantInfo, module: str, to_version: int, drop_old: bool = False
) -> UpgradeResult:
    """`subscription_upgrade`, with the failure caught into the result (for many tenants)."""
    result = UpgradeResult(tenant=tenant.name, module=module, to_version=to_version)
    outcome = tenant_work_run(_upgrade_work(result, drop_old), tenant, what="upgrade")
    return _result_finish(result, outcome)


def subscriptions_upgrade_all(
    *,
    module: str,
    to_version: int,
    drop_old: bool = False,
    on_result: Callable[[UpgradeResult], None] | None = None,
) -> list[UpgradeResult]:
    """Move every subscriber of `module` to `to_version`, one tenant at a time, past failures.

    Subscribers already on `to_version` are included only with `drop_old`.
    """
    subscribers = Subscription.objects.filter(module__name=module)
    if not drop_old:
        subscribers = subscribers.exclude(version=to_version)
    tenant_ids = list(subscribers.order_by("tenant_id").values_list("tenant_id", flat=True))
    tenants = [tenant_info_from_row(row) for row in Tenant.objects.filter(id__in=tenant_ids).order_by("id")]
    results = {t.id: UpgradeResult(tenant=t.name, module=module, to_version=to_version) for t in tenants}

    def work(tenant: TenantInfo) -> None:
        _upgrade_work(results[tenant.id], drop_old)(tenant)

    def done(outcome: TenantOutcome[None]) -> None:
        result = _result_finish(results[outcome.tenant.id], outcome)
        if on_result is not None:
            on_result(result)

    tenants_each(work, tenants=tenants, on_result=done, what="upgrade")
    return [results[t.id] for t in tenants]


def _upgrade_work(result: UpgradeResult, drop_old: bool) -> Callable[[TenantInfo], None]:
    """The move of one tenant, filling `result` as it goes (kept on a failure)."""

    def work(tenant: TenantInfo) -> None:
        subscription_upgrade(
            tenant=tenant, module=result.module, to_version=result.to_version, drop_old=drop_old, result=result
        )

    return work


def _result_finish(result: UpgradeResult, outcome: TenantOutcome[None]) -> UpgradeResult:
    result.error = outcome.error
    result.seconds = outcome.seconds
    return result
