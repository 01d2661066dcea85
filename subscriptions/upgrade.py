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
4. only with `drop_old`: back the tenant database up (when `tenants.backups` exists) and
   unapply the old version's migrations in that database.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from django.apps import apps
from django.db import connections, transaction
from django.db.migrations.recorder import MigrationRecorder

from m3saas.engines import engine
from m3saas.exceptions import ApplicationError
from m3saas.modules.registry import module_version_get
from m3saas.tenancy.cache import master_cache_invalidate
from m3saas.tenancy.connections import tenant_connection_register
from m3saas.tenancy.context import TenantInfo, use_tenant
from m3saas.tenancy.migrate import tenant_migrate_schema, tenant_unmigrate_app
from subscriptions.models import Subscription
from subscriptions.selectors import dependency_graph, resolve_modules, tenant_subscriptions

logger = logging.getLogger(__name__)

UPGRADE_FUNCTION = "upgrade"


class UpgradeError(ApplicationError):
    code = "upgrade_refused"
    default_message = "The subscription cannot be moved to that version."


class DataStep(Protocol):
    def __call__(self, *, alias: str, from_version: int) -> None: ...


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


def upgrade_step_get(module: str, major: int) -> DataStep | None:
    """The data step of `modules/<module>/v<major>/upgrade.py`, or None when it has none."""
    if module_version_get(module, major) is None:
        return None
    dotted = f"modules.{module}.v{major}.upgrade"
    if importlib.util.find_spec(dotted) is None:
        return None
    step = getattr(importlib.import_module(dotted), UPGRADE_FUNCTION, None)
    if not callable(step):
        raise UpgradeError(f"{dotted} has no function {UPGRADE_FUNCTION}(*, alias, from_version).")
    return step


def _both_versions(tenant: TenantInfo, new_modules: list[tuple[str, int]]) -> TenantInfo:
    """`tenant` with the modules it will have added after the ones it has (old majors kept)."""
    added = tuple(m for m in new_modules if m not in tenant.modules)
    return replace(tenant, modules=(*tenant.modules, *added))


def _fresh(tenant: TenantInfo) -> TenantInfo:
    """The tenant as the master says now (a cached `TenantInfo` may be stale)."""
    from tenants.models import Tenant
    from tenants.selectors import tenant_info_from_row

    return tenant_info_from_row(Tenant.objects.get(pk=tenant.id))


def _applied_versions(tenant: TenantInfo, module: str) -> set[int]:
    """Majors of `module` with migrations recorded in the tenant database."""
    alias = tenant_connection_register(tenant)
    applied = MigrationRecorder(connections[alias]).applied_migrations()
    prefix = f"{module}_v"
    return {
        int(label[len(prefix) :]) for label, _ in applied if label.startswith(prefix) and label[len(prefix) :].isdigit()
    }


def _backup(tenant: TenantInfo) -> str | None:
    """Back the tenant database up when the backups service exists; returns the file written."""
    if importlib.util.find_spec("tenants.backups") is None:
        logger.info("no backups service: dropping the old version of tenant %s without a backup", tenant.name)
        return None
    backups: Any = importlib.import_module("tenants.backups")
    made = backups.backup_create(target=backups.backup_target_get(tenant_name=tenant.name))
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
    tenant = _fresh(tenant)
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

    engine().database_create(both)
    result.applied = tenant_migrate_schema(both)

    step = upgrade_step_get(module, to_version)
    if step is not None:
        with use_tenant(both), transaction.atomic(using=alias):
            step(alias=alias, from_version=from_version)
        result.data_step = True

    with transaction.atomic(using="default"):
        row = Subscription.objects.select_for_update().get(pk=subscription.pk)
        if row.version != from_version:
            raise UpgradeError(f"The subscription changed to v{row.version} meanwhile; nothing switched.")
        row.version = to_version
        row.save(update_fields=["version"])
        # Other processes' caches drop the old modules only once the switch is committed.
        transaction.on_commit(master_cache_invalidate, using="default")
    result.switched = True
    logger.info("tenant %s moved from %s v%s to v%s", tenant.name, module, from_version, to_version)

    if drop_old:
        _drop_versions(_fresh(tenant), module, [from_version], result)
    return result


def subscription_upgrade_safe(
    *, tenant: TenantInfo, module: str, to_version: int, drop_old: bool = False
) -> UpgradeResult:
    """`subscription_upgrade`, with the failure caught into the result (for many tenants)."""
    started = time.monotonic()
    result = UpgradeResult(tenant=tenant.name, module=module, to_version=to_version)
    try:
        subscription_upgrade(tenant=tenant, module=module, to_version=to_version, drop_old=drop_old, result=result)
    except ApplicationError as exc:
        logger.warning("moving tenant %s to %s v%s refused: %s", tenant.name, module, to_version, exc.message)
        result.error = exc.message
    except Exception as exc:  # one tenant's failure must not stop the others
        logger.exception("moving tenant %s to %s v%s failed", tenant.name, module, to_version)
        result.error = f"{type(exc).__name__}: {exc}"
    finally:
        result.seconds = time.monotonic() - started
    return result


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
    from tenants.models import Tenant
    from tenants.selectors import tenant_info_from_row

    subscribers = Subscription.objects.filter(module__name=module)
    if not drop_old:
        subscribers = subscribers.exclude(version=to_version)
    tenant_ids = list(subscribers.order_by("tenant_id").values_list("tenant_id", flat=True))
    results: list[UpgradeResult] = []
    for tenant_row in Tenant.objects.filter(id__in=tenant_ids).order_by("id"):
        result = subscription_upgrade_safe(
            tenant=tenant_info_from_row(tenant_row), module=module, to_version=to_version, drop_old=drop_old
        )
        results.append(result)
        if on_result is not None:
            on_result(result)
    return results


def module_rows_copy(*, alias: str, from_label: str, to_label: str, batch_size: int = 500) -> dict[str, int]:
    """Copy the rows of every model of app `from_label` into the same-named model of `to_label`.

    Only fields both models have are copied; primary keys are kept, and rows whose key is
    already in the new table are skipped. Models are copied in their definition order, so
    declare referenced models first. Returns rows copied per model name. A starting point
    for a data step; write your own when the new version changes the shape.
    """
    copied: dict[str, int] = {}
    source = apps.get_app_config(from_label)
    for new in apps.get_app_config(to_label).get_models():
        if not new._meta.managed or new._meta.proxy:
            continue
        model_name = new._meta.object_name or ""
        try:
            old = source.get_model(model_name)
        except LookupError:
            continue
        if not old._meta.managed or old._meta.proxy:
            continue
        old_fields = {f.attname for f in old._meta.concrete_fields}
        common = [f.attname for f in new._meta.concrete_fields if f.attname in old_fields]
        pk = new._meta.pk.attname
        existing = set(new._default_manager.using(alias).values_list(pk, flat=True))
        rows = [
            new(**row)
            for row in old._default_manager.using(alias).order_by(old._meta.pk.attname).values(*common).iterator()
            if row.get(pk) not in existing
        ]
        new._default_manager.using(alias).bulk_create(rows, batch_size=batch_size)
        copied[model_name] = len(rows)
    return copied
