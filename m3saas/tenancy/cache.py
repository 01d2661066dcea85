"""Cache of master-database reads, invalidated as a whole whenever master data changes.

Keys carry a generation; a change to tenants, modules, dependencies or subscriptions sets a
new generation, so every cached entry is dropped at once. With the default per-process
cache other processes see a change after `TENANT_CACHE_TIMEOUT`; a shared cache
(`REDIS_URL`) makes every process see it within `TENANT_CACHE_GENERATION_CHECK_MS`.

In front of that cache each process keeps the values of the current generation itself: a hit
costs no unpickling, and does not depend on the cache's size (Django's per-process default
keeps 300 entries, which 1,000 tenants would churn through, re-reading the master on most
requests). A value lives at most `TENANT_CACHE_TIMEOUT` in this front. The generation is read
from the cache on every call, or, from a shared cache, at most once per
`TENANT_CACHE_GENERATION_CHECK_MS` (a round trip to Redis costs about as much as the rest of a
warm request's routing); this process's own invalidations are seen at once.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any, TypeVar

from django.conf import settings
from django.core.cache import cache
from django.db import DEFAULT_DB_ALIAS, connections, transaction

T = TypeVar("T")
_GENERATION_KEY = "m3saas:master-generation"
# This process's front: (generation, {key: (monotonic deadline, value)}); replaced, never mutated
# across generations, so a new generation drops every old value at once.
_front: tuple[str, dict[str, tuple[float, Any]]] = ("", {})
_FRONT_MAX_ENTRIES = 100_000
# The generation last read from (or written to) the cache, and when (monotonic seconds).
_seen: tuple[float, str] = (0.0, "")


def _generation() -> str:
    global _seen
    now = time.monotonic()
    seen_at, seen = _seen
    if seen and now - seen_at < settings.TENANT_CACHE_GENERATION_CHECK_MS / 1000:
        return seen
    generation = cache.get(_GENERATION_KEY)
    if generation is None:
        generation = uuid.uuid4().hex
        if not cache.add(_GENERATION_KEY, generation, timeout=None):
            generation = cache.get(_GENERATION_KEY, generation)
    _seen = (now, str(generation))
    return str(generation)


def master_cached(key: str, compute: Callable[[], T]) -> T:
    """Return the cached value of `key` for the current master generation, computing it if absent."""
    timeout = settings.TENANT_CACHE_TIMEOUT
    if timeout <= 0:
        return compute()
    global _front
    generation = _generation()
    front_generation, front = _front
    if front_generation != generation:
        front = {}
        _front = (generation, front)
    now = time.monotonic()
    hit = front.get(key)
    if hit is not None and hit[0] > now:
        return hit[1]
    full_key = f"m3saas:{generation}:{key}"
    value = cache.get(full_key)
    if value is None:
        value = compute()
        cache.set(full_key, value, timeout=timeout)
    if len(front) >= _FRONT_MAX_ENTRIES:
        front.clear()
    front[key] = (now + timeout, value)
    return value


def _generation_renew() -> None:
    global _seen
    generation = uuid.uuid4().hex
    cache.set(_GENERATION_KEY, generation, timeout=None)
    _seen = (time.monotonic(), generation)


def master_cache_invalidate() -> None:
    """Drop every cached master read (in this cache), now and again when the master commits.

    Dropping only inside the transaction would let a concurrent reader cache the old rows under
    the new generation until `TENANT_CACHE_TIMEOUT`.
    """
    _generation_renew()
    if connections[DEFAULT_DB_ALIAS].in_atomic_block:
        transaction.on_commit(_generation_renew, using=DEFAULT_DB_ALIAS)
