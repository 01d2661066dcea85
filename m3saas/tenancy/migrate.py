"""Migrate one tenant database with exactly the module apps the tenant has.

Django's `migrate` records a migration as applied even where the router skipped all of its
operations, so a module subscribed later would never get its tables. Here the plan is built
from the tenant's module apps only, so a later subscription is migrated on the next run.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache

from django.db import connections
from django.db.migrations.executor import MigrationExecutor
from django.db.migrations.loader import MigrationLoader
from django.db.migrations.migration import Migration

from m3saas.engines import engine
from m3saas.exceptions import ApplicationError
from m3saas.tenancy.connections import tenant_connection_register
from m3saas.tenancy.context import use_tenant
from m3saas.tenancy.info import TenantInfo
from m3saas.tenancy.resume import MigrationProgress, migration_resumable


class TenantMigrationError(ApplicationError):
    status_code = 500
    code = "tenant_migration_failed"
    default_message = "The tenant database could not be migrated."


# Seconds a migration waits for another one of the same tenant database to finish.
SCHEMA_LOCK_TIMEOUT = 600


@contextmanager
def tenant_schema_lock(tenant: TenantInfo) -> Iterator[None]:
    """Serialise schema changes of one tenant database across threads, processes and servers.

    A request's auto-migration, `migrate_tenants` and an upgrade may reach the same tenant at
    once; the second waits, then finds nothing left to apply. MySQL/MariaDB: a row lock in the
    master database, which tenant users cannot reach; SQLite: a lock file beside the tenant's
    database file.
    """
    with engine().schema_lock(tenant, timeout=SCHEMA_LOCK_TIMEOUT) as acquired:
        if not acquired:
            raise TenantMigrationError(
                f"Tenant {tenant.name} is being migrated by another process; gave up after {SCHEMA_LOCK_TIMEOUT}s."
            )
        yield


def _targets(executor: MigrationExecutor, labels: tuple[str, ...]) -> list[tuple[str, str]]:
    graph = executor.loader.graph
    known = {app for app, _ in graph.nodes}
    return [node for label in labels if label in known for node in graph.leaf_nodes(label)]


@lru_cache(maxsize=1)
def _code_graph_nodes() -> frozenset[tuple[str, str]]:
    """Every migration of the code (read from disk once per process, no database)."""
    return frozenset(MigrationLoader(None, ignore_no_migrations=True).graph.nodes)


@lru_cache(maxsize=256)
def tenant_migration_fingerprint(labels: tuple[str, ...]) -> str:
    """A hash of the migrations a database migrated with `labels` has applied, app by app.

    Kept in the master after a successful run: a tenant whose fingerprint equals this value
    (and whose schema is ready) has nothing to apply, so a run skips it without opening its
    database. A change of the code's migrations or of the tenant's apps changes the value.
    """
    names = sorted(f"{app}.{name}" for app, name in _code_graph_nodes() if app in labels)
    return hashlib.sha256("\n".join([",".join(labels), *names]).encode()).hexdigest()


def tenant_migration_plan(executor: MigrationExecutor, labels: tuple[str, ...]) -> list[str]:
    """Names of the pending migrations of `labels`; raises if they need any other app."""
    plan = executor.migration_plan(_targets(executor, labels))
    foreign = sorted({m.app_label for m, _ in plan if m.app_label not in labels})
    if foreign:
        raise TenantMigrationError(
            f"Module migrations depend on apps outside the tenant's modules ({', '.join(foreign)}); "
            "module migrations may depend only on their own module and its declared dependencies."
        )
    return [f"{m.app_label}.{m.name}" for m, _ in plan]


def tenant_migrate_schema(tenant: TenantInfo, *, locked: bool = False) -> list[str]:
    """Apply the tenant's pending module migrations; return their names (`app.migration`).

    `locked`: the caller already holds `tenant_schema_lock(tenant)`. A migration that a killed
    process left half-applied is completed: operations whose effect is already in the database
    are skipped (`m3saas.tenancy.resume`).
    """
    if not locked:
        with tenant_schema_lock(tenant):
            return tenant_migrate_schema(tenant, locked=True)
    alias = tenant_connection_register(tenant)
    labels = tenant.app_labels
    progress = MigrationProgress(connections[alias])

    def forget_recorded(action: str, migration: Migration | None = None, fake: bool | None = None, /) -> None:
        if action == "apply_success" and migration is not None:
            progress.forget(migration.app_label, migration.name)

    # Planned under the lock: a migration that waited sees what the other one applied.
    executor = MigrationExecutor(connections[alias], progress_callback=forget_recorded)
    pending = tenant_migration_plan(executor, labels)
    if pending:
        progress.prepare(set(executor.loader.applied_migrations))
        targets = _targets(executor, labels)
        for migration, backwards in executor.migration_plan(targets):
            if not backwards:
                migration_resumable(migration, progress)
        # Inside the tenant's context the router answers from `tenant`, not from the master.
        with use_tenant(tenant):
            executor.migrate(targets)
    return pending


def tenant_pending_migrations(tenant: TenantInfo) -> list[str]:
    """The tenant's module migrations not applied yet."""
    alias = tenant_connection_register(tenant)
    return tenant_migration_plan(MigrationExecutor(connections[alias]), tenant.app_labels)


def tenant_unmigrate_app(tenant: TenantInfo, app_label: str) -> list[str]:
    """Unapply every migration of `app_label` in the tenant database (drops its tables and views).

    `tenant` must list the app among its modules, or the router would skip the operations
    while the migrations were still recorded as unapplied. Returns the unapplied names.
    """
    if app_label not in tenant.module_labels:
        raise TenantMigrationError(f"{app_label} is not among the modules of the given tenant {tenant.name}.")
    alias = tenant_connection_register(tenant)
    with tenant_schema_lock(tenant):
        executor = MigrationExecutor(connections[alias])
        plan = executor.migration_plan([(app_label, None)])
        others = sorted({m.app_label for m, _ in plan if m.app_label != app_label})
        if others:
            raise TenantMigrationError(f"Migrations of {', '.join(others)} depend on {app_label}: unapply them first.")
        if plan:
            # A resume point of a migration that is applied again later would skip its operations.
            MigrationProgress(connections[alias]).prepare(set(executor.loader.applied_migrations))
            with use_tenant(tenant):
                executor.migrate([(app_label, None)])
    return [f"{m.app_label}.{m.name}" for m, _ in plan]
