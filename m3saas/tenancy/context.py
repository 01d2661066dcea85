"""The current tenant, held in a `ContextVar` (safe under threads and asyncio)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field

from m3saas.exceptions import TenantNotSetError


@dataclass(frozen=True)
class TenantInfo:
    """What serving a tenant needs, resolved from the master database and cached.

    `modules` is ordered dependencies first: `(module name, major version)` pairs.
    `schema_state` mirrors `Tenant.schema_state` (`pending` until the database is brought up
    to date after a registration or a subscription change; see `tenants.services`).
    """

    id: int
    name: str
    user: str
    password: str
    modules: tuple[tuple[str, int], ...] = field(default=())
    schema_state: str = "ready"

    @property
    def alias(self) -> str:
        """The tenant's connection alias, which is also its database name."""
        return self.name

    @property
    def module_labels(self) -> tuple[str, ...]:
        return tuple(f"{name}_v{major}" for name, major in self.modules)

    @property
    def app_labels(self) -> tuple[str, ...]:
        """Every app migrated into the tenant database: the platform's bookkeeping, then modules."""
        return ("bookkeeping", *self.module_labels)

    def has_module(self, name: str, major: int) -> bool:
        return (name, major) in self.modules

    def module_major(self, name: str) -> int | None:
        for module, major in self.modules:
            if module == name:
                return major
        return None


_current: ContextVar[TenantInfo | None] = ContextVar("m3saas_tenant", default=None)


def tenant_current() -> TenantInfo:
    """The tenant of this request or `use_tenant` block; raises outside one."""
    tenant = _current.get()
    if tenant is None:
        raise TenantNotSetError(
            "No tenant is set: module models are only reachable inside a tenant request "
            "or a `use_tenant(...)` block (or with an explicit `.using(alias)`)."
        )
    return tenant


def tenant_current_or_none() -> TenantInfo | None:
    return _current.get()


@contextmanager
def use_tenant(tenant: TenantInfo) -> Iterator[TenantInfo]:
    """Make `tenant` current for the block and restore the previous tenant on exit."""
    from m3saas.tenancy.connections import tenant_connection_register

    tenant_connection_register(tenant)
    token = _current.set(tenant)
    try:
        yield tenant
    finally:
        _current.reset(token)
