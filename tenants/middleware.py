"""Resolve `/{tenant_id}/{module}/v{version}/…`, check the subscription, set the tenant context."""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse

from m3saas.api import error_response
from m3saas.exceptions import ApplicationError
from m3saas.tenancy.connections import (
    tenant_connection_make_room,
    tenant_connection_register,
    tenant_connections_trim,
)
from m3saas.tenancy.context import use_tenant
from m3saas.tenancy.ownership import tenant_owner_verify
from m3saas.tenancy.paths import PLATFORM_SEGMENTS, resolve_module_version, tenant_path_regex
from tenants.selectors import tenant_info_get
from tenants.services import tenant_ready_ensure


class TenantMiddleware:
    """Sets the tenant for the request and resets it in the same call, whatever happens."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response
        self.path_regex = tenant_path_regex(settings.M3SAAS_CONFIG.sub_directory)

    def __call__(self, request: HttpRequest) -> HttpResponse:
        match = self.path_regex.match(request.path_info)
        if match is None or match["module"] in PLATFORM_SEGMENTS:
            return self.get_response(request)
        try:
            tenant = tenant_info_get(tenant_id=int(match["tenant"]))
            version = resolve_module_version(tenant, match["module"], match["version"])
            # Only a ready tenant is served (AUTO_MIGRATION brings a pending one up once); no query.
            tenant = tenant_ready_ensure(tenant=tenant)
            # Here, not in `use_tenant`: a password no configured key opens is a JSON 503.
            tenant_connection_register(tenant)
        except ApplicationError as exc:
            return error_response(exc)
        request.tenant = tenant  # type: ignore[attr-defined]
        request.module_version = version  # type: ignore[attr-defined]
        # Close first, so that this request's own connection never takes the thread past the bound.
        tenant_connection_make_room(tenant.alias)
        try:
            with use_tenant(tenant):
                try:
                    tenant_owner_verify(tenant)  # once per process and tenant
                except ApplicationError as exc:
                    return error_response(exc)
                return self.get_response(request)
        finally:
            tenant_connections_trim(keep=tenant.alias)
