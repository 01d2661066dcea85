"""One static URL pattern per installed module version; the middleware checks subscriptions."""

from __future__ import annotations

from django.urls import URLPattern, URLResolver, include, re_path

from m3saas.modules.registry import module_versions
from m3saas.tenancy.paths import TENANT_ID_PATTERN


def module_urlpatterns() -> list[URLPattern | URLResolver]:
    """`<tenant_id>/<module>/v<major>[.<minor>…]/` → the module version's `urls.py`.

    `v1` matches `v1`, `v1.4` and `v1.0.1`, never `v10`. The tenant id is the one the middleware
    resolves: a path it leaves alone must not reach a module view without a tenant.
    """
    patterns: list[URLPattern | URLResolver] = []
    for module in sorted(module_versions().values(), key=lambda m: (m.name, m.major)):
        patterns.append(
            re_path(
                rf"^(?P<tenant_id>{TENANT_ID_PATTERN})/{module.name}/v(?P<version>{module.major}(?:\.[0-9]+)*)/",
                include((f"{module.app_name}.urls", module.label), namespace=module.label),
            )
        )
    return patterns
