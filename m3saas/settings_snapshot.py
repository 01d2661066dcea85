"""The settings the tenant route reads on every request, read once per process.

Each `django.conf.settings.X` runs `LazyObject.__getattribute__`, a Python function, about as
dear as a dictionary of a dozen entries built by hand; the route read a dozen of them per
request (issue 16). `snapshot()` reads them once into a frozen value, dropped whenever Django
announces a settings change (`setting_changed`: `override_settings`, pytest-django's
`settings` fixture) and read again on the next call. A setting changed any other way (assigning
to `settings` at run time) is not seen: settings are not changed at run time in production.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver


@dataclass(frozen=True, slots=True)
class Snapshot:
    tenant_cache_timeout: int
    tenant_cache_shared: bool
    tenant_cache_generation_check_seconds: float
    tenant_max_open_connections: int
    tenant_rate_limit: Any  # m3saas.access.RateLimit | None
    module_api_access: str
    traffic_flush_seconds: float


_current: Snapshot | None = None


def snapshot() -> Snapshot:
    current = _current
    if current is None:
        current = _take()
    return current


def _take() -> Snapshot:
    global _current
    _current = Snapshot(
        tenant_cache_timeout=int(settings.TENANT_CACHE_TIMEOUT),
        tenant_cache_shared=bool(settings.TENANT_CACHE_SHARED),
        tenant_cache_generation_check_seconds=settings.TENANT_CACHE_GENERATION_CHECK_MS / 1000,
        tenant_max_open_connections=int(settings.TENANT_MAX_OPEN_CONNECTIONS),  # 0 or more (settings.py)
        tenant_rate_limit=settings.TENANT_RATE_LIMIT,
        module_api_access=str(settings.MODULE_API_ACCESS),
        traffic_flush_seconds=float(settings.TRAFFIC_FLUSH_SECONDS),
    )
    return _current


@receiver(setting_changed)
def _forget(**kwargs: Any) -> None:
    global _current
    _current = None
