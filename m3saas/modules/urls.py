"""One static URL pattern per installed module version; the middleware checks subscriptions."""

from __future__ import annotations

import re
from typing import Any

from django.urls import Resolver404, URLPattern, URLResolver, include, re_path
from django.urls.resolvers import ResolverMatch, RoutePattern

from m3saas.modules.registry import module_versions
from m3saas.tenancy.paths import TENANT_ID_PATTERN

# What every module mount's pattern starts with: the module's name and the major version's digits.
_MOUNT_KEY_RE = re.compile(rf"^{TENANT_ID_PATTERN}/(?P<module>[^/]+)/v(?P<major>[0-9]+)[./]")
# Module paths a dispatcher has resolved, without their tenant id, remembered up to this many (then
# all forgotten at once): the endpoints of the modules, whatever the number of tenants. Made-up paths
# that resolve (`animals/<any pk>`) can only churn it, back to resolving as Django does.
RESOLVED_MAX = 4096


def module_urlpatterns() -> list[URLPattern | URLResolver]:
    """`<tenant_id>/<module>/v<major>[.<minor>…]/` → the module version's `urls.py`.

    `v1` matches `v1`, `v1.4` and `v1.0.1`, never `v10`. The tenant id is the one the middleware
    resolves: a path it leaves alone must not reach a module view without a tenant.
    """
    return [
        re_path(
            rf"^(?P<tenant_id>{TENANT_ID_PATTERN})/{module.name}/v(?P<version>{module.major}(?:\.[0-9]+)*)/",
            include((f"{module.app_name}.urls", module.label), namespace=module.label),
        )
        for module in sorted(module_versions().values(), key=lambda m: (m.name, m.major))
    ]


class ModuleDispatch(URLResolver):
    """`path(route, include(patterns))` that sends a module path straight to the mount it names.

    Django resolves a list by trying each pattern until one matches, and each module mount that
    does not match raises and catches a `Resolver404`: a request to the last of 40 module versions
    paid for the 39 before it (issue 16). Here the module name and major version are read off the
    path once, and Django's own resolution runs over this resolver's prefix and a list of just
    what could match before that mount (the patterns listed ahead of the mounts) and the mount:
    the match is the one the whole list gives. Whatever that does not match (`v1x/`, a platform
    path) is resolved over the whole list, as before. Reversing, the schema generator and Django's
    checks see the whole list (`url_patterns`).

    A module path's match is then remembered (`RESOLVED_MAX`) under the path without its tenant
    id: the mount's pattern takes any id alike, so `/7/test/v1/animals` resolves as `/8/…` does
    but for the `tenant_id` argument, and the memo does not grow with the tenants. That holds
    while nothing listed ahead of the mount can match a path that starts with a tenant id: a
    mount with anything else ahead of it (only a `path()` route starting with a letter is sure
    not to) is resolved every time. The resolution of a module path through the mount's
    `include()` was 40 % of the Python the tenant route added to a request (issue 16,
    `bench.profile --opcodes`). Each caller gets its own copy, so nothing a caller changes in it
    reaches the next request. Paths that do not resolve are not remembered.
    """

    def __init__(self, route: str, patterns: list[URLPattern | URLResolver]) -> None:
        pattern = RoutePattern(route, is_endpoint=False)
        super().__init__(pattern, patterns)
        keys = {m.label: (m.name, str(m.major)) for m in module_versions().values()}
        ahead: list[URLPattern | URLResolver] = []
        # (module, major) → the resolver of that mount, and whether its matches may be remembered.
        self._by_mount: dict[tuple[str, str], tuple[URLResolver, bool]] = {}
        for item in patterns:
            key = keys.get(getattr(item, "namespace", None) or "")
            if key is None:
                ahead.append(item)
            else:
                rememberable = all(_never_a_tenant_path(other) for other in ahead)
                self._by_mount[key] = (URLResolver(pattern, [*ahead, item]), rememberable)
        # The path after the tenant id (`test/v1/animals`) → its match, `tenant_id` aside.
        self._resolved: dict[str, ResolverMatch] = {}

    def resolve(self, path: Any) -> ResolverMatch:
        text = str(path)
        matched = self.pattern.match(text)
        tenant_id = rest = ""
        if matched:
            tenant_id, _, rest = matched[0].partition("/")
            # What the mounts' TENANT_ID_PATTERN takes: 1-19 ASCII digits.
            if rest and len(tenant_id) <= 19 and tenant_id.isascii() and tenant_id.isdigit():
                known = self._resolved.get(rest)
                if known is not None:
                    return _match_copy(known, tenant_id)
        found = _MOUNT_KEY_RE.match(matched[0]) if matched else None
        mount = self._by_mount.get((found["module"], found["major"])) if found else None
        if mount is not None:
            one, rememberable = mount
            try:
                match = one.resolve(text)
            except Resolver404:
                pass
            else:
                if not (rememberable and rest and match.kwargs.get("tenant_id") == tenant_id):
                    return match
                if len(self._resolved) >= RESOLVED_MAX:
                    self._resolved.clear()
                self._resolved[rest] = match
                return _match_copy(match, tenant_id)
        return super().resolve(text)


def _never_a_tenant_path(item: URLPattern | URLResolver) -> bool:
    """Whether `item` cannot match a path that starts with a tenant id: a `path()` route (or
    include) whose route starts with a letter. Anything else might."""
    pattern = item.pattern
    route = str(pattern) if isinstance(pattern, RoutePattern) else ""
    return bool(route) and route[0].isascii() and route[0].isalpha()


def _match_copy(match: ResolverMatch, tenant_id: str) -> ResolverMatch:
    """A remembered match for one caller and tenant id: its own arguments, names and tried
    patterns. (A match from `URLResolver.resolve` always holds these as dicts and lists.)"""
    fields = match.__dict__
    copy = ResolverMatch.__new__(ResolverMatch)
    copy.__dict__ = {
        **fields,
        "kwargs": {**fields["kwargs"], "tenant_id": tenant_id},
        "captured_kwargs": dict(fields["captured_kwargs"]),
        "extra_kwargs": dict(fields["extra_kwargs"]),
        "app_names": list(fields["app_names"]),
        "namespaces": list(fields["namespaces"]),
        "tried": list(map(list, fields["tried"])),
    }
    return copy
