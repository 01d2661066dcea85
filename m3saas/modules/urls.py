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
# Module paths a dispatcher has resolved, remembered up to this many (then all forgotten at once):
# a tenant's few endpoints, over many tenants. Made-up paths that resolve (`animals/<any pk>`) can
# only churn it, back to resolving as Django does.
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

    A module path's match is then remembered (`RESOLVED_MAX`): the same path resolves the same
    way for as long as these patterns exist, and the resolution of a module path through the
    mount's `include()` was 40 % of the Python the tenant route added to a request (issue 16,
    `bench.profile --opcodes`). Each caller gets its own copy, so nothing a caller changes in
    it reaches the next request. Paths that do not resolve are not remembered.
    """

    def __init__(self, route: str, patterns: list[URLPattern | URLResolver]) -> None:
        pattern = RoutePattern(route, is_endpoint=False)
        super().__init__(pattern, patterns)
        keys = {m.label: (m.name, str(m.major)) for m in module_versions().values()}
        ahead: list[URLPattern | URLResolver] = []
        self._by_mount: dict[tuple[str, str], URLResolver] = {}
        for item in patterns:
            key = keys.get(getattr(item, "namespace", None) or "")
            if key is None:
                ahead.append(item)
            else:
                self._by_mount[key] = URLResolver(pattern, [*ahead, item])
        self._resolved: dict[str, ResolverMatch] = {}

    def resolve(self, path: Any) -> ResolverMatch:
        text = str(path)
        known = self._resolved.get(text)
        if known is not None:
            return _match_copy(known)
        matched = self.pattern.match(text)
        found = _MOUNT_KEY_RE.match(matched[0]) if matched else None
        one = self._by_mount.get((found["module"], found["major"])) if found else None
        if one is not None:
            try:
                match = one.resolve(text)
            except Resolver404:
                pass
            else:
                if len(self._resolved) >= RESOLVED_MAX:
                    self._resolved.clear()
                self._resolved[text] = match
                return _match_copy(match)
        return super().resolve(text)


def _match_copy(match: ResolverMatch) -> ResolverMatch:
    """A remembered match for one caller: its own arguments, names and tried patterns. (A match
    from `URLResolver.resolve` always holds these as dicts and lists, never None.)"""
    fields = match.__dict__
    copy = ResolverMatch.__new__(ResolverMatch)
    copy.__dict__ = {
        **fields,
        "kwargs": dict(fields["kwargs"]),
        "captured_kwargs": dict(fields["captured_kwargs"]),
        "extra_kwargs": dict(fields["extra_kwargs"]),
        "app_names": list(fields["app_names"]),
        "namespaces": list(fields["namespaces"]),
        "tried": list(map(list, fields["tried"])),
    }
    return copy
