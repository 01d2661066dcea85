"""Writes on tenants: creation, database provisioning, migration of one or all tenants."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from django.conf import settings
from django.db import connections, transaction

from m3saas.tenancy.connections import tenant_connection_register, tenant_connection_unregister
from m3saas.tenancy.context import TenantInfo
from m3saas.tenancy.migrate import tenant_migrate_schema
from tenants.models import Tenant
from tenants.provisioning import provisioner
from tenants.selectors import tenant_info_from_row, tenant_info_list

logger = logging.getLogger(__name__)


@dataclass
class TenantMigrationResult:
    tenant: str
    applied: list[str] = field(default_factory=list)
    error: str | None = None
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.error is None


def tenant_create(
    *,
    name: str,
    user: str,
    password: str,
    id: int | None = None,
    per_day_backups: int = 1,
    max_backups: int = 10,
    provision: bool | None = None,
) -> Tenant:
    """Validate and save a tenant; provision its database when `provision` (default: AUTO_MIGRATION)."""
    tenant = Tenant(
        id=id, name=name, user=user, password=password, per_day_backups=per_day_backups, max_backups=max_backups
    )
    tenant.full_clean()
    with transaction.atomic(using="default"):
        tenant.save()
    if settings.AUTO_MIGRATION if provision is None else provision:
        tenant_provision(tenant=tenant_info_from_row(tenant))
    return tenant


def tenant_provision(*, tenant: TenantInfo) -> list[str]:
    """Create the tenant's database and user if missing and apply its module migrations.

    Idempotent: a second call changes nothing and returns no migrations.
    """
    provisioner().create(tenant)
    tenant_connection_register(tenant)
    return tenant_migrate_schema(tenant)


def tenant_database_drop(*, tenant: TenantInfo) -> None:
    """Drop the tenant's database and user, and forget its connection alias. Data is lost."""
    tenant_connection_unregister(tenant.alias)
    provisioner().drop(tenant)


def tenant_migrate(*, tenant: TenantInfo) -> TenantMigrationResult:
    """Provision and migrate one tenant, catching its failure into the result."""
    started = time.monotonic()
    result = TenantMigrationResult(tenant=tenant.name)
    try:
        result.applied = tenant_provision(tenant=tenant)
    except Exception as exc:  # one tenant's failure must not stop the others
        logger.exception("migrating tenant %s failed", tenant.name)
        result.error = f"{type(exc).__name__}: {exc}"
    finally:
        result.seconds = time.monotonic() - started
        _close_thread_connections()
    return result


def _close_thread_connections() -> None:
    # Worker threads must not keep one open connection per tenant they migrated.
    for conn in connections.all(initialized_only=True):
        if conn.alias != "default":
            conn.close()


def tenants_migrate_all(
    *,
    tenants: Iterable[TenantInfo] | None = None,
    workers: int | None = None,
    on_result: Callable[[TenantMigrationResult], None] | None = None,
) -> list[TenantMigrationResult]:
    """Migrate every tenant (or `tenants`) with at most `workers` in parallel, past failures."""
    todo = list(tenant_info_list() if tenants is None else tenants)
    workers = max(1, workers or settings.TENANT_MIGRATION_WORKERS)
    for info in todo:
        # Register in this thread: connection settings are shared by all threads.
        tenant_connection_register(info)

    def run(info: TenantInfo) -> TenantMigrationResult:
        try:
            return tenant_migrate(tenant=info)
        finally:
            connections.close_all()

    results: list[TenantMigrationResult] = []
    if workers == 1 or len(todo) <= 1:
        for info in todo:
            result = tenant_migrate(tenant=info)
            results.append(result)
            if on_result:
                on_result(result)
        return results
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="migrate") as pool:
        for result in pool.map(run, todo):
            results.append(result)
            if on_result:
                on_result(result)
    return results
