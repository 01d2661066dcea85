"""Reads of tenants, cached per master generation (see `m3saas.tenancy.cache`)."""

from __future__ import annotations

from m3saas.exceptions import TenantNotFoundError
from m3saas.tenancy.cache import master_cached
from m3saas.tenancy.context import TenantInfo
from subscriptions.selectors import dependency_graph, resolve_modules, tenant_subscriptions
from tenants.models import Tenant


def _info(tenant: Tenant, graph: dict[str, list[tuple[str, int]]]) -> TenantInfo:
    modules = resolve_modules(tenant_subscriptions(tenant_id=tenant.id), graph)
    return TenantInfo(
        id=tenant.id,
        name=tenant.name,
        user=tenant.user,
        password=tenant.password,
        modules=tuple(modules),
        schema_state=tenant.schema_state,
    )


def tenant_info_from_row(tenant: Tenant) -> TenantInfo:
    """Resolve a tenant row (uncached)."""
    return _info(tenant, dependency_graph())


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


def tenant_info_list() -> list[TenantInfo]:
    """Every tenant, uncached, with its effective modules."""
    graph = dependency_graph()
    return [_info(t, graph) for t in Tenant.objects.order_by("id")]
