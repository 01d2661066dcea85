"""Resolve `/{tenant_id}/{module}/v{version}/…`, check the subscription, set the tenant context."""

from __future__ import annotations

import re
from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse

from m3saas.api import error_response
from m3saas.exceptions import (
    ApplicationError,
    ModuleNotSubscribedError,
    UnknownModuleError,
    VersionNotFoundError,
)
from m3saas.modules.registry import module_names, module_version_get
from m3saas.modules.versions import VERSION_RE, Version
from m3saas.tenancy.connections import tenant_connection_make_room, tenant_connections_trim
from m3saas.tenancy.context import TenantInfo, use_tenant

# Path segments after the tenant id that are platform routes, not modules.
PLATFORM_SEGMENTS = frozenset({"migrate"})


# A tenant id as a URL holds it: 19 digits hold every id the database can give; a longer one is
# no tenant's (404), and never reaches `int()`, which refuses more than 4,300 digits.
TENANT_ID_PATTERN = "[0-9]{1,19}"


def tenant_path_regex(sub_directory: str) -> re.Pattern[str]:
    prefix = f"/{re.escape(sub_directory)}" if sub_directory else ""
    return re.compile(rf"^{prefix}/(?P<tenant>{TENANT_ID_PATTERN})/(?P<module>[^/]+)(?:/(?P<version>[^/]*))?")


def resolve_module_version(tenant: TenantInfo, module: str, segment: str | None) -> Version:
    """Check that `tenant` may use `module` at the version in `segment` (`v1.4`); return it."""
    if module not in module_names():
        raise UnknownModuleError(f"No module named '{module}'.")
    if not segment:
        raise VersionNotFoundError(f"Give a version after the module: /{tenant.id}/{module}/v1/…")
    if not segment.startswith("v") or not VERSION_RE.fullmatch(segment[1:]):
        raise VersionNotFoundError(f"'{segment}' is not a version: use v1, v1.4, v1.0.1.")
    version = Version(segment[1:])
    subscribed = tenant.module_major(module)
    if subscribed is None:
        raise ModuleNotSubscribedError(f"Tenant {tenant.id} is not subscribed to module '{module}'.")
    if subscribed != version.major:
        raise VersionNotFoundError(f"Tenant {tenant.id} uses module '{module}' at v{subscribed}, not v{version.major}.")
    if module_version_get(module, version.major) is None:
        raise VersionNotFoundError(f"Module '{module}' has no version v{version.major}.")
    return version


class TenantMiddleware:
    """Sets the tenant for the request and resets it in the same call, whatever happens."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response
        self.path_regex = tenant_path_regex(settings.M3SAAS_CONFIG.sub_directory)

    def __call__(self, request: HttpRequest) -> HttpResponse:
        match = self.path_regex.match(request.path_info)
        if match is None or match["module"] in PLATFORM_SEGMENTS:
            return self.get_response(request)
        from tenants.selectors import tenant_info_get
        from tenants.services import tenant_auto_migrate

        try:
            tenant = tenant_info_get(tenant_id=int(match["tenant"]))
            version = resolve_module_version(tenant, match["module"], match["version"])
            # AUTO_MIGRATION: a pending tenant is brought up to date once; otherwise no query.
            tenant = tenant_auto_migrate(tenant=tenant)
        except ApplicationError as exc:
            return error_response(exc)
        request.tenant = tenant  # type: ignore[attr-defined]
        request.module_version = version  # type: ignore[attr-defined]
        # Close first, so that this request's own connection never takes the thread past the bound.
        tenant_connection_make_room(tenant.alias)
        try:
            with use_tenant(tenant):
                return self.get_response(request)
        finally:
            tenant_connections_trim(keep=tenant.alias)
