"""One static URL pattern per installed module version; the middleware checks subscriptions."""

from __future__ import annotations

from django.urls import URLPattern, URLResolver, include, re_path

from m3saas.modules.registry import module_versions


def module_urlpatterns() -> list[URLPattern | URLResolver]:
    """`<tenant_id>/<module>/v<major>[.<minor>…]/` → the module version's `urls.py`.

    `v1` matches `v1`, `v1.4` and `v1.0.1`, never `v10`.
    """
    patterns: list[URLPattern | URLResolver] = []
    for module in sorted(module_versions().values(), key=lambda m: (m.name, m.major)):
        patterns.append(
            re_path(
                rf"^(?P<tenant_id>[0-9]+)/{module.name}/v(?P<version>{module.major}(?:\.[0-9]+)*)/",
                include((f"{module.app_name}.urls", module.label), namespace=module.label),
            )
        )
    return patterns
