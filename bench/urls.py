"""The production URLs plus `bench/plain/animals`, the same rows served without tenancy.

The plain route is placed where the module routes are mounted, right before them, so both
routes pay the same platform routing (admin, health, schemas, migrate) and the difference
left is what tenancy adds: the module mount and the tenant middleware.
"""

from __future__ import annotations

import gc
import os

from django.urls import URLPattern, URLResolver, path

from bench.views import PlainAnimalListView
from m3saas import urls as production
from m3saas.modules.registry import module_labels
from m3saas.modules.urls import ModuleDispatch

handler400 = getattr(production, "handler400", None)
handler403 = getattr(production, "handler403", None)
handler404 = getattr(production, "handler404", None)
handler500 = getattr(production, "handler500", None)

plain = path("bench/plain/animals", PlainAnimalListView.as_view(), name="bench-plain-animals")


def _platform_patterns_with_plain() -> list[URLPattern | URLResolver]:
    patterns: list[URLPattern | URLResolver] = list(production.platform_patterns)
    labels = module_labels()
    first_module = next(
        (i for i, p in enumerate(patterns) if getattr(p, "namespace", None) in labels),
        len(patterns),
    )
    patterns.insert(first_module, plain)
    return patterns


def _urlpatterns() -> list[URLPattern | URLResolver]:
    """Production's root patterns, with the platform include replaced by the one holding `plain`."""
    result: list[URLPattern | URLResolver] = []
    for pattern in production.urlpatterns:
        if isinstance(pattern, URLResolver) and pattern.urlconf_name is production.platform_patterns:
            result.append(ModuleDispatch(str(pattern.pattern), _platform_patterns_with_plain()))
        else:
            result.append(pattern)
    return result


urlpatterns = _urlpatterns()

# Figure 1's tail experiments (issue 16): `BENCH_GC=freeze` moves what the worker loaded so far out
# of the collector's reach (`gc.freeze()`), `BENCH_GC=off` disables the collector; the URLconf is
# imported in each worker once Django's apps are loaded.
if os.environ.get("BENCH_GC") == "freeze":
    gc.freeze()
elif os.environ.get("BENCH_GC") == "off":
    gc.disable()
