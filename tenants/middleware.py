"""Resolve `/{tenant_id}/{module}/v{version}/…`, check the caller's API key, the subscription and
the rate limits, set the tenant context."""

from __future__ import annotations

import re
from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.urls import Resolver404, resolve

from m3saas.access import (
    ACCESS_PUBLIC,
    READ_METHODS,
    ApiKeyInfo,
    KeyNotAllowedError,
    NotAuthenticatedError,
    ThrottledError,
    key_from_header,
    module_api_access,
    rate_limit_hit,
    request_is_staff_session,
    view_is_public,
)
from m3saas.api import error_response
from m3saas.exceptions import ApplicationError
from m3saas.tenancy.cache import master_cache_request_begin, master_cache_request_end
from m3saas.tenancy.connections import (
    tenant_connection_make_room,
    tenant_connection_register,
    tenant_connections_trim,
)
from m3saas.tenancy.context import tenant_context_enter, tenant_context_exit
from m3saas.tenancy.ownership import tenant_owner_verify
from m3saas.tenancy.paths import PLATFORM_SEGMENTS, resolve_module_version, tenant_path_regex
from m3saas.traffic import traffic_count
from tenants.api_keys import api_key_authenticate, tenant_rate_limit_get
from tenants.moves import tenant_moving_check
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
        status_code = 500  # what ApiErrorMiddleware answers for an exception from below
        generation = master_cache_request_begin()  # the master generation is read once for the request
        try:
            response = self._serve(request, match)
            status_code = response.status_code
            return response
        finally:
            master_cache_request_end(generation)
            # Counted once the tenant is known: ids of no tenant make no counters.
            counted = getattr(request, "_traffic_tenant_id", None)
            if counted is not None:
                traffic_count(tenant_id=counted, status_code=status_code)

    def _serve(self, request: HttpRequest, match: re.Match[str]) -> HttpResponse:
        tenant_id = int(match["tenant"])
        try:
            # First: a caller without this tenant's key learns nothing of the tenant or its modules.
            api_key = self._api_key(request, tenant_id=tenant_id, module=match["module"])
            tenant = tenant_info_get(tenant_id=tenant_id)
            request._traffic_tenant_id = tenant_id  # type: ignore[attr-defined]
            version = resolve_module_version(tenant, match["module"], match["version"])
            # Callers without a key (public views) are counted apart, per client address: they must
            # not spend the budget of the tenant's own software.
            scope = (
                f"tenant:{tenant_id}" if api_key else f"tenant:{tenant_id}:anonymous:{request.META.get('REMOTE_ADDR')}"
            )
            rate_limit_hit(scope, tenant_rate_limit_get(tenant_id=tenant_id, api_key=api_key))
            if api_key is not None and api_key.rate_limit is not None:
                rate_limit_hit(f"key:{api_key.id}", api_key.rate_limit)
            # Only a ready tenant is served (AUTO_MIGRATION brings a pending one up once); no query.
            tenant = tenant_ready_ensure(tenant=tenant)
            # A moving tenant's writes: 503 with Retry-After (reads go on); no query otherwise.
            tenant = tenant_moving_check(tenant=tenant, method=request.method or "GET")
            # Here, not in `use_tenant`: a password no configured key opens is a JSON 503.
            tenant_connection_register(tenant)
        except ApplicationError as exc:
            return self._refused(exc)
        request.api_key = api_key  # type: ignore[attr-defined]
        request.tenant = tenant  # type: ignore[attr-defined]
        request.module_version = version  # type: ignore[attr-defined]
        # Close first, so that this request's own connection never takes the thread past the bound.
        tenant_connection_make_room(tenant.alias)
        current = tenant_context_enter(tenant)  # as `use_tenant(tenant)`, the alias registered above
        try:
            try:
                tenant_owner_verify(tenant)  # once per process and tenant
            except ApplicationError as exc:
                return error_response(exc)
            return self.get_response(request)
        finally:
            tenant_context_exit(current)
            tenant_connections_trim(keep=tenant.alias)

    def _api_key(self, request: HttpRequest, *, tenant_id: int, module: str) -> ApiKeyInfo | None:
        """The caller's key for this tenant, or None where no key is needed; raises 401/403.

        A key that is sent must be valid, even where none is needed. A key's limits (modules,
        read-only) narrow what it opens, never what is open to anyone. Without a key, a staff
        user's admin session may read (the browsable API for operators), never write.
        """
        sent = key_from_header(request.META.get("HTTP_AUTHORIZATION", ""))
        if sent is None:
            if module_api_access() == ACCESS_PUBLIC or self._view_is_public(request):
                return None
            if (request.method or "GET").upper() in READ_METHODS and request_is_staff_session(request):
                return None
            raise NotAuthenticatedError()
        if not sent:
            raise NotAuthenticatedError()
        api_key = api_key_authenticate(key=sent, tenant_id=tenant_id)
        if api_key.allows(module=module, method=request.method or "GET"):
            return api_key
        if module_api_access() == ACCESS_PUBLIC or self._view_is_public(request):
            return None  # open to anyone, but not through this key: the view must not take it as the caller
        raise KeyNotAllowedError()

    @staticmethod
    def _view_is_public(request: HttpRequest) -> bool:
        try:
            found = resolve(request.path_info, getattr(request, "urlconf", None))
        except Resolver404:
            return False
        return view_is_public(found.func)

    @staticmethod
    def _refused(exc: ApplicationError) -> HttpResponse:
        response = error_response(exc)
        if isinstance(exc, NotAuthenticatedError):
            response["WWW-Authenticate"] = 'Bearer realm="api"'
        elif isinstance(exc, ThrottledError):
            response["Retry-After"] = str(exc.retry_after)
        return response
