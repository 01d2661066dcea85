"""The current tenant, held in a `ContextVar` (safe under threads and asyncio)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar, Token

from m3saas.exceptions import TenantNotSetError
from m3saas.tenancy.connections import tenant_connection_register
from m3saas.tenancy.info import TenantInfo

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
    """Register the tenant's alias, make `tenant` current for the block and restore the previous
    tenant on exit. (The tenant middleware registers the alias itself, to answer an unreadable
    password with a JSON 503, and then uses `tenant_context_enter`/`tenant_context_exit`.)
    """
    tenant_connection_register(tenant)
    token = tenant_context_enter(tenant)
    try:
        yield tenant
    finally:
        tenant_context_exit(token)


def tenant_context_enter(tenant: TenantInfo) -> Token[TenantInfo | None]:
    """Make `tenant` current (its alias registered by the caller) until `tenant_context_exit(token)`:
    `use_tenant` without contextlib's generator, for the tenant middleware's per-request path."""
    return _current.set(tenant)


def tenant_context_exit(token: Token[TenantInfo | None]) -> None:
    _current.reset(token)
