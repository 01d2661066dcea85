"""Read-only reports on tenant databases: which tenant is behind on which migration."""

from __future__ import annotations

from dataclasses import dataclass, field

from django.db.migrations.loader import MigrationLoader

from m3saas.engines import engine
from m3saas.tenancy.each import tenants_each
from m3saas.tenancy.info import TenantInfo
from m3saas.tenancy.migrate import tenant_pending_migrations
from tenants.models import Tenant, TenantMigrationRun
from tenants.selectors import tenant_info_list_resolved


@dataclass
class TenantMigrationStatus:
    tenant_id: int
    tenant: str
    schema_state: str
    database_exists: bool = True
    pending: list[str] = field(default_factory=list)
    error: str | None = None
    last_run: TenantMigrationRun | None = None

    @property
    def behind(self) -> bool:
        """Pending migrations, a missing database, an unreadable one, or a last run that failed."""
        failed = self.last_run is not None and self.last_run.status != TenantMigrationRun.Status.OK
        return bool(self.pending) or not self.database_exists or self.error is not None or failed


def _all_migrations(labels: tuple[str, ...]) -> list[str]:
    """Every migration of `labels`, in order: what a database that does not exist yet lacks."""
    graph = MigrationLoader(None, ignore_no_migrations=True).graph
    known = {app for app, _ in graph.nodes}
    names: list[str] = []
    for label in labels:
        if label not in known:
            continue
        for leaf in graph.leaf_nodes(label):
            for app, name in graph.forwards_plan(leaf):
                if app in labels and f"{app}.{name}" not in names:
                    names.append(f"{app}.{name}")
    return names


def _last_runs(tenant_ids: list[int]) -> dict[int, TenantMigrationRun]:
    latest: dict[int, TenantMigrationRun] = {}
    runs = TenantMigrationRun.objects.filter(tenant_id__in=tenant_ids).order_by("tenant_id", "-started_at", "-id")
    for run in runs.iterator():
        latest.setdefault(run.tenant_id, run)
    return latest


def tenants_migration_status() -> list[TenantMigrationStatus]:
    """Every tenant with its pending migrations and last recorded run; changes nothing."""
    rows = list(Tenant.objects.order_by("id"))
    runs = _last_runs([row.id for row in rows])
    statuses = {
        row.id: TenantMigrationStatus(
            tenant_id=row.id, tenant=row.name, schema_state=row.schema_state, last_run=runs.get(row.id)
        )
        for row in rows
    }
    infos, unresolved = tenant_info_list_resolved(rows)
    for bare, error in unresolved:
        statuses[bare.id].error = error

    def work(info: TenantInfo) -> None:
        status = statuses[info.id]
        # Checked first: opening a missing SQLite database would create it.
        status.database_exists = engine().database_exists(info)
        if status.database_exists:
            status.pending = tenant_pending_migrations(info)
        else:
            status.pending = _all_migrations(info.app_labels)

    # A broken tenant database is reported, not raised.
    for outcome in tenants_each(work, tenants=infos, what="migration report"):
        statuses[outcome.tenant.id].error = outcome.error
    return list(statuses.values())
