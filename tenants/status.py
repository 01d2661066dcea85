"""What the admin's status page shows: tenants by state, failed migrations, late backups, servers,
traffic. Reads only: a few master queries, one listing of the backup folder, one cache read."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Count, OuterRef, Subquery
from django.utils import timezone

from m3saas.traffic import TenantTraffic, traffic_flush, traffic_list
from tenants.backup_files import backups_list_all
from tenants.models import Tenant, TenantMigrationRun
from tenants.servers import ServerSummary, server_list

# A scheduled run takes a while: a backup is late only past its interval and this much more.
BACKUP_GRACE = timedelta(hours=1)
CHART_HEIGHT = 40
BAR_WIDTH = 8


@dataclass(frozen=True)
class FailedTenant:
    tenant: Tenant
    error: str
    failed_at: datetime | None


@dataclass(frozen=True)
class LateBackup:
    tenant: Tenant
    newest: datetime | None  # local time of the newest backup; None: never backed up
    interval: timedelta


@dataclass(frozen=True)
class ServerCount:
    server: str
    states: dict[str, int]
    address: str = ""
    state: str = ""
    capacity: str = ""

    @property
    def total(self) -> int:
        return sum(self.states.values())


@dataclass(frozen=True)
class Bar:
    x: int
    requests_y: int
    requests_height: int
    errors_y: int
    errors_height: int
    title: str


@dataclass(frozen=True)
class TrafficRow:
    tenant: Tenant
    traffic: TenantTraffic
    bars: list[Bar]


def server_address(summary: ServerSummary) -> str:
    """Where the server is, as an operator recognises it (never its account)."""
    backend = settings.M3SAAS_CONFIG.database.backend
    if summary.port:
        return f"{backend} {summary.host}:{summary.port}"
    return f"{backend} files under {summary.host or settings.M3SAAS_CONFIG.var_dir}"


def tenants_by_state() -> dict[str, int]:
    counts = dict(Tenant.objects.values_list("schema_state").annotate(n=Count("id")).order_by())
    return {state: counts.get(state, 0) for state in Tenant.SchemaState.values}


def tenants_failed_list() -> list[FailedTenant]:
    """Tenants whose last migration failed, with the error of their newest failed run."""
    newest_failed = TenantMigrationRun.objects.filter(
        tenant=OuterRef("pk"), status=TenantMigrationRun.Status.FAILED
    ).order_by("-started_at", "-id")
    rows = Tenant.objects.filter(schema_state=Tenant.SchemaState.FAILED).annotate(
        last_error=Subquery(newest_failed.values("error")[:1]),
        last_failed_at=Subquery(newest_failed.values("started_at")[:1]),
    )
    return [FailedTenant(tenant=t, error=t.last_error or "", failed_at=t.last_failed_at) for t in rows]


# The longest each BACKUP_REPEAT unit lasts: a backup is late only once no calendar could excuse it.
REPEAT_UNITS = {
    "day": timedelta(days=1),
    "week": timedelta(days=7),
    "month": timedelta(days=31),
    "year": timedelta(days=366),
}


def backup_interval() -> timedelta | None:
    """How often `runcrons` backs each database up (BACKUP_INTERVAL times BACKUP_REPEAT); None: off.

    (A tenant's `per_day_backups` is how many of a day's backups are kept, not how many are taken.)
    """
    unit = REPEAT_UNITS.get(str(settings.BACKUP_REPEAT).strip().lower())
    return None if unit is None else unit * max(int(settings.BACKUP_INTERVAL), 1)


def backups_late_list(*, now: datetime | None = None) -> list[LateBackup]:
    """Tenants whose newest backup is older than the schedule (plus `BACKUP_GRACE`), or missing;
    pending tenants have no database yet."""
    interval = backup_interval()
    if interval is None:
        return []
    local_now = timezone.localtime(now or timezone.now()).replace(tzinfo=None)  # backups name local time
    newest = {database: found[-1].taken_at for database, found in backups_list_all().items() if found}
    late = []
    for tenant in Tenant.objects.exclude(schema_state=Tenant.SchemaState.PENDING).order_by("id"):
        taken = newest.get(tenant.name)
        if taken is None or local_now - taken > interval + BACKUP_GRACE:
            late.append(LateBackup(tenant=tenant, newest=taken, interval=interval))
    return late


def servers_list(tenants: list[Tenant]) -> list[ServerCount]:
    """Every server of the registry (those without tenants too), its tenants counted by state."""
    found: dict[str, dict[str, int]] = {}
    for tenant in tenants:
        states = found.setdefault(tenant.server_name, dict.fromkeys(Tenant.SchemaState.values, 0))
        states[tenant.schema_state] += 1
    rows = []
    for summary in server_list():
        rows.append(
            ServerCount(
                server=summary.name,
                states=found.pop(summary.name, dict.fromkeys(Tenant.SchemaState.values, 0)),
                address=server_address(summary),
                state=summary.state if summary.configured else f"{summary.state}, not in the config file",
                capacity="unlimited" if summary.capacity < 1 else str(summary.capacity),
            )
        )
    return rows


def traffic_rows(tenants: list[Tenant], *, now: float | None = None) -> list[TrafficRow]:
    """Each tenant's last 24 hours as SVG bars (one scale for the page), busiest tenants first."""
    traffic_flush()  # this process's own counts, at least, are current
    traffic = traffic_list(tenant_ids=[t.pk for t in tenants], now=now)
    peak = max((n for t in traffic for n in t.requests), default=0) or 1
    rows = []
    for tenant, counts in zip(tenants, traffic, strict=True):
        bars = []
        for i, (hour, requests, errors) in enumerate(zip(counts.hours, counts.requests, counts.errors, strict=True)):
            req_h = round(CHART_HEIGHT * requests / peak)
            err_h = round(CHART_HEIGHT * min(errors, requests or errors) / peak)
            start = timezone.localtime(datetime.fromtimestamp(hour * 3600, tz=timezone.get_current_timezone()))
            bars.append(
                Bar(
                    x=i * BAR_WIDTH,
                    requests_y=CHART_HEIGHT - req_h,
                    requests_height=req_h,
                    errors_y=CHART_HEIGHT - err_h,
                    errors_height=err_h,
                    title=f"{start:%H}:00 {requests} requests, {errors} errors",
                )
            )
        rows.append(TrafficRow(tenant=tenant, traffic=counts, bars=bars))
    rows.sort(key=lambda r: (-r.traffic.total_requests, r.tenant.pk))
    return rows


def status_get() -> dict[str, object]:
    """The status page's context."""
    tenants = list(Tenant.objects.order_by("id"))
    return {
        "by_state": tenants_by_state(),
        "failed": tenants_failed_list(),
        "late_backups": backups_late_list(),
        "servers": servers_list(tenants),
        "traffic": traffic_rows(tenants),
        "chart_width": 24 * BAR_WIDTH,
        "chart_height": CHART_HEIGHT,
        "states": Tenant.SchemaState.values,
        "backup_interval": backup_interval(),
    }
