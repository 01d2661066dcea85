"""Cache of master-database reads, invalidated as a whole whenever master data changes.

Keys carry a generation; a change to tenants, modules, dependencies or subscriptions sets a
new generation, so every cached entry is dropped at once. With the default per-process
cache other processes see a change after `TENANT_CACHE_TIMEOUT`; a shared cache
(`CACHE_URL`) makes it immediate everywhere.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import TypeVar

from django.conf import settings
from django.core.cache import cache

T = TypeVar("T")
_GENERATION_KEY = "m3saas:master-generation"


def _generation() -> str:
    generation = cache.get(_GENERATION_KEY)
    if generation is None:
        generation = uuid.uuid4().hex
        if not cache.add(_GENERATION_KEY, generation, timeout=None):
            generation = cache.get(_GENERATION_KEY, generation)
    return str(generation)


def master_cached(key: str, compute: Callable[[], T]) -> T:
    """Return the cached value of `key` for the current master generation, computing it if absent."""
    timeout = settings.TENANT_CACHE_TIMEOUT
    if timeout <= 0:
        return compute()
    full_key = f"m3saas:{_generation()}:{key}"
    value = cache.get(full_key)
    if value is None:
        value = compute()
        cache.set(full_key, value, timeout=timeout)
    return value


def master_cache_invalidate() -> None:
    """Drop every cached master read (in this cache)."""
    cache.set(_GENERATION_KEY, uuid.uuid4().hex, timeout=None)
