"""Reads of tenants, cached per master generation (see `m3saas.tenancy.cache`)."""

from __future__ import annotations

from collections.abc import Iterable

from m3saas.conf import BackupLimits
from m3saas.exceptions import ApplicationError, TenantNotFoundError
from m3saas.servers import DEFAULT_SERVER
from m3saas.tenancy.cache import master_cached
from m3saas.tenancy.info import TenantInfo
from subscriptions.selectors import dependency_graph, resolve_modules, subscriptions_by_tenant, tenant_subscriptions
from tenants.models import Tenant


def _info(
    tenant: Tenant, graph: dict[str, list[tuple[str, int]]], subscriptions: list[tuple[str, int]] | None = None
) -> TenantInfo:
    """`subscriptions`: the tenant's, when the caller read them in bulk (else one query here)."""
    roots = tenant_subscriptions(tenant_id=tenant.id) if subscriptions is None else subscriptions
    modules = resolve_modules(roots, graph)
    return TenantInfo(
        id=tenant.id,
        name=tenant.name,
        user=tenant.user,
        password=tenant.password,
        modules=tuple(modules),
        schema_state=tenant.schema_state,
        backups=BackupLimits(per_day=tenant.per_day_backups, max=tenant.max_backups),
        server=tenant.server_name,
        moving=tenant.moving,
    )


def tenant_info_from_row(tenant: Tenant) -> TenantInfo:
    """Resolve a tenant row (uncached)."""
    return _info(tenant, dependency_graph())


def tenant_info_fresh(*, tenant_id: int) -> TenantInfo:
    """The tenant as the master says now, uncached (a cached `TenantInfo` may be stale)."""
    return tenant_info_from_row(Tenant.objects.get(pk=tenant_id))


def _get(**lookup: object) -> TenantInfo:
    tenant = Tenant.objects.filter(**lookup).first()
    if tenant is None:
        raise TenantNotFoundError()
    return tenant_info_from_row(tenant)


def tenant_info_get(*, tenant_id: int) -> TenantInfo:
    """The tenant with `tenant_id` and its effective modules; raises `TenantNotFoundError`."""
    return master_cached(f"tenant:id:{tenant_id}", lambda: _get(id=tenant_id))


def tenant_info_get_by_alias(alias: str) -> TenantInfo:
    return master_cached(f"tenant:name:{alias}", lambda: _get(name=alias))


def tenant_info_list_resolved(
    rows: Iterable[Tenant] | None = None,
) -> tuple[list[TenantInfo], list[tuple[TenantInfo, str]]]:
    """Resolve every tenant (or `rows`), uncached; a tenant whose modules do not resolve is set
    aside with the reason (and no modules), so batch work can report it and go on."""
    graph = dependency_graph()
    infos: list[TenantInfo] = []
    unresolved: list[tuple[TenantInfo, str]] = []
    tenants = list(Tenant.objects.order_by("id") if rows is None else rows)
    # One query for every tenant's subscriptions, whatever their number (no N+1).
    subscriptions = subscriptions_by_tenant(tenant_ids=None if rows is None else [row.id for row in tenants])
    for row in tenants:
        try:
            infos.append(_info(row, graph, subscriptions.get(row.id, [])))
        except ApplicationError as exc:
            bare = TenantInfo(
                id=row.id, name=row.name, user=row.user, password=row.password, modules=(), server=row.server_name
            )
            unresolved.append((bare, exc.message))
    return infos, unresolved


def tenant_info_list() -> list[TenantInfo]:
    """Every tenant, uncached, with its effective modules (three queries, whatever the number of tenants)."""
    graph = dependency_graph()
    tenants = list(Tenant.objects.order_by("id"))
    subscriptions = subscriptions_by_tenant()
    return [_info(t, graph, subscriptions.get(t.id, [])) for t in tenants]


def tenant_server_names() -> set[str]:
    """The servers holding at least one tenant (a blank server is the default one)."""
    names = Tenant.objects.values_list("server", flat=True).distinct().order_by()
    return {str(name) if name else DEFAULT_SERVER for name in names}


class TenantDirectory:
    """The platform's view of the tenant registry (`settings.M3SAAS_TENANT_DIRECTORY`)."""

    def get(self, *, tenant_id: int) -> TenantInfo:
        return tenant_info_get(tenant_id=tenant_id)

    def get_by_alias(self, alias: str) -> TenantInfo:
        return tenant_info_get_by_alias(alias)

    def all(self) -> list[TenantInfo]:
        return tenant_info_list()

    def server_names(self) -> set[str]:
        return tenant_server_names()
