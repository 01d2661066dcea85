"""Resolve `/{tenant_id}/{module}/v{version}/…`, check the caller's API key, the subscription and
the rate limits, set the tenant context."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.signals import setting_changed
from django.db import connections
from django.dispatch import receiver
from django.http import HttpRequest, HttpResponse
from django.urls import Resolver404, resolve

from m3saas.access import (
    ACCESS_PUBLIC,
    READ_METHODS,
    ApiKeyInfo,
    KeyNotAllowedError,
    NotAuthenticatedError,
    RateLimit,
    ThrottledError,
    key_from_header,
    module_api_access,
    rate_limit_hit,
    request_is_staff_session,
    view_is_public,
)
from m3saas.api import error_response
from m3saas.exceptions import ApplicationError
from m3saas.modules.versions import Version
from m3saas.tenancy.cache import (
    master_cache_deadline,
    master_cache_generation,
    master_cache_request_begin,
    master_cache_request_end,
)
from m3saas.tenancy.connections import (
    tenant_connection_make_room,
    tenant_connection_register,
    tenant_connections_trim,
)
from m3saas.tenancy.context import tenant_context_enter, tenant_context_exit
from m3saas.tenancy.info import TenantInfo
from m3saas.tenancy.ownership import tenant_owner_verify
from m3saas.tenancy.paths import PLATFORM_SEGMENTS, resolve_module_version, tenant_path_regex
from m3saas.traffic import traffic_count
from tenants.api_keys import api_key_authenticate, tenant_rate_limit_get
from tenants.moves import tenant_moving_check
from tenants.selectors import tenant_info_get
from tenants.services import State, tenant_ready_ensure

# Routes remembered per process (`_Route`); all forgotten past this many, as the master cache's front.
ROUTES_MAX = 100_000
# Version segments (`v1`, `v1.4`) a route keeps already checked: a few short ones. Any other is
# checked on each request, so made-up segments (`v1.0.0.0…`) cannot grow the memo.
SEGMENTS_PER_ROUTE = 8
SEGMENT_MAX_LENGTH = 16


@dataclass(slots=True)
class _Route:
    """What `/{tenant}/{module}/…` resolved to, under one master generation.

    Remembered (`generation` set) only for a ready tenant that is not moving: then the tenant, its
    subscription and its own rate limit can change only with the master, so with the generation.
    It expires with the earliest cached master value it was built from. Otherwise the state
    checks run on every request, as they look again.
    """

    generation: str | None
    expires: float  # monotonic
    tenant: TenantInfo
    limit: RateLimit | None  # the tenant's own, for callers without a key
    versions: dict[str, Version]  # version segments already checked against the subscription
    entry: dict[str, Any] | None = None  # the alias's settings entry once registered

    def version_keep(self, segment: str, version: Version) -> None:
        """Keep a checked segment, if it is short and the route has room for it."""
        if len(self.versions) < SEGMENTS_PER_ROUTE and len(segment) <= SEGMENT_MAX_LENGTH:
            self.versions[segment] = version


_routes: dict[tuple[int, str], _Route] = {}


@receiver(setting_changed)
def _routes_forget(**kwargs: Any) -> None:
    """A route holds what settings made of it (the default rate limit): read again after a change."""
    _routes.clear()


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
        module, segment = match["module"], match["version"]
        # The request's: the key and every master read of the route use it.
        generation = master_cache_generation()
        try:
            # First: a caller without this tenant's key learns nothing of the tenant or its modules.
            api_key = self._api_key(request, tenant_id=tenant_id, module=module, generation=generation)
            route, version = self._route(request, tenant_id, module, segment, generation, keyed=api_key is not None)
            tenant = route.tenant
            if api_key is None:
                # Callers without a key (public views) are counted apart, per client address: they
                # must not spend the budget of the tenant's own software.
                rate_limit_hit(f"tenant:{tenant_id}:anonymous:{request.META.get('REMOTE_ADDR')}", route.limit)
            else:
                # A remembered route holds the tenant's own limit, read under the key's generation.
                if route.generation is not None:
                    limit = route.limit
                else:
                    limit = tenant_rate_limit_get(tenant_id=tenant_id, api_key=api_key)
                rate_limit_hit(f"tenant:{tenant_id}", limit)
                if api_key.rate_limit is not None:
                    rate_limit_hit(f"key:{api_key.id}", api_key.rate_limit)
            if route.generation is None:
                # Only a ready tenant is served (AUTO_MIGRATION brings a pending one up once); no query.
                tenant = tenant_ready_ensure(tenant=tenant)
                # A moving tenant's writes: 503 with Retry-After (reads go on); no query otherwise.
                tenant = tenant_moving_check(tenant=tenant, method=request.method or "GET")
            alias = tenant.alias
            entry = connections.settings.get(alias)
            if entry is None or entry is not route.entry:
                # Here, not in `use_tenant`: a password no configured key opens is a JSON 503.
                tenant_connection_register(tenant)
                route.entry = connections.settings[alias]
        except ApplicationError as exc:
            return self._refused(exc)
        request.api_key = api_key  # type: ignore[attr-defined]
        request.tenant = tenant  # type: ignore[attr-defined]
        request.module_version = version  # type: ignore[attr-defined]
        # Close first, so that this request's own connection never takes the thread past the bound.
        tenant_connection_make_room(alias)
        current = tenant_context_enter(tenant)  # as `use_tenant(tenant)`, the alias registered above
        try:
            try:
                tenant_owner_verify(tenant)  # once per process and tenant
            except ApplicationError as exc:
                return error_response(exc)
            return self.get_response(request)
        finally:
            tenant_context_exit(current)
            tenant_connections_trim(keep=alias)

    @staticmethod
    def _route(
        request: HttpRequest, tenant_id: int, module: str, segment: str | None, generation: str | None, *, keyed: bool
    ) -> tuple[_Route, Version]:
        """The route as remembered for `generation` (the request's master generation), else
        checked again (the tenant, its subscription to the module version, its own rate limit),
        and the version the segment asks for (raises 4xx)."""
        route = _routes.get((tenant_id, module))
        if route is not None and route.generation == generation and route.expires > time.monotonic():
            request._traffic_tenant_id = tenant_id  # type: ignore[attr-defined]
            version = route.versions.get(segment or "")
            if version is None:
                version = resolve_module_version(route.tenant, module, segment)  # no master read
                route.version_keep(segment or "", version)
            return route, version

        def read() -> tuple[TenantInfo, Version, bool, RateLimit | None]:
            tenant = tenant_info_get(tenant_id=tenant_id)
            # Counted once the tenant is known: ids of no tenant make no counters.
            request._traffic_tenant_id = tenant_id  # type: ignore[attr-defined]
            version = resolve_module_version(tenant, module, segment)
            remember = generation is not None and tenant.schema_state == State.READY and not tenant.moving
            # Not read for a keyed caller unless remembered: uncached, each read is a master query.
            limit = tenant_rate_limit_get(tenant_id=tenant_id) if remember or not keyed else None
            return tenant, version, remember, limit

        (tenant, version, remember, limit), expires = master_cache_deadline(read)
        if not remember:
            return _Route(None, 0.0, tenant, limit, {}), version
        route = _Route(generation, expires, tenant, limit, {})
        route.version_keep(segment or "", version)
        if len(_routes) >= ROUTES_MAX:
            _routes.clear()
        _routes[(tenant_id, module)] = route
        return route, version

    def _api_key(
        self, request: HttpRequest, *, tenant_id: int, module: str, generation: str | None
    ) -> ApiKeyInfo | None:
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
        api_key = api_key_authenticate(key=sent, tenant_id=tenant_id, generation=generation)
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
