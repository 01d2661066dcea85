"""Cache of master-database reads, invalidated as a whole whenever master data changes.

Keys carry a generation; a change to tenants, modules, dependencies or subscriptions sets a
new generation, so every cached entry is dropped at once. With the default per-process
cache other processes see a change after `TENANT_CACHE_TIMEOUT` (and this process keeps the
generation itself, never reading it back from its own cache); a shared cache
(`REDIS_URL`) makes every process see it within `TENANT_CACHE_GENERATION_CHECK_MS`.

In front of that cache each process keeps the values of the current generation itself: a hit
costs no unpickling, and does not depend on the cache's size (Django's per-process default
keeps 300 entries, which 1,000 tenants would churn through, re-reading the master on most
requests). A value lives at most `TENANT_CACHE_TIMEOUT` in this front. The generation is read
from the cache on every call, or, from a shared cache, at most once per
`TENANT_CACHE_GENERATION_CHECK_MS` (a round trip to Redis costs about as much as the rest of a
warm request's routing); this process's own invalidations are seen at once.

A cache that does not answer (Redis down) fails no request: reads go to the master until it
answers again, with a warning, and the first process to see it back starts a new generation
(an invalidation may have been lost meanwhile).
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
import uuid
from collections.abc import Callable, Iterator
from contextvars import ContextVar, Token
from typing import Any, TypeVar

from django.core.cache import cache
from django.db import DEFAULT_DB_ALIAS, connections, transaction

from m3saas.settings_snapshot import snapshot

T = TypeVar("T")
logger = logging.getLogger(__name__)
_GENERATION_KEY = "m3saas:master-generation"
# This process's front: (generation, {key: (monotonic deadline, value)}); replaced, never mutated
# across generations, so a new generation drops every old value at once.
_front: tuple[str, dict[str, tuple[float, Any]]] = ("", {})
_FRONT_MAX_ENTRIES = 100_000
# The generation last read from (or written to) the cache, and when (monotonic seconds).
_seen: tuple[float, str] = (0.0, "")
# Since when (monotonic seconds) the cache has not answered this process, or None; and when
# to ask it again (at most once a second, so an unreachable cache does not slow every request).
_down_since: float | None = None
_retry_at = 0.0
_RETRY_SECONDS = 1.0
# Inside `master_cache_request`: the generation this request read first ("" until then), so that a
# request asks the cache for it once, not once per cached read (a locmem get costs about 5 µs).
_request_generation: ContextVar[list[str] | None] = ContextVar("m3saas_request_generation", default=None)
# Inside `master_cache_deadline`: the earliest front deadline of the values read so far.
_deadline: ContextVar[list[float] | None] = ContextVar("m3saas_master_deadline", default=None)


class _CacheDown(Exception):
    pass


def _ask(operation: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Call a cache operation; a cache that fails (any backend's own error) raises `_CacheDown`."""
    global _down_since, _retry_at, _seen
    try:
        return operation(*args, **kwargs)
    except Exception as exc:
        now = time.monotonic()
        if _down_since is None:
            logger.warning("The cache does not answer (%s): master reads are not cached until it does", exc)
            _down_since = now
        _retry_at = now + _RETRY_SECONDS
        _seen = (0.0, "")
        raise _CacheDown from exc


@contextlib.contextmanager
def master_cache_request() -> Iterator[None]:
    """One request's cached master reads: the generation is read from the cache once for all of them.

    An invalidation made inside the block is seen by the next read (`master_cache_invalidate`
    forgets the request's generation); one made elsewhere meanwhile is seen by the next request,
    as with `TENANT_CACHE_GENERATION_CHECK_MS`.
    """
    token = master_cache_request_begin()
    try:
        yield
    finally:
        master_cache_request_end(token)


def master_cache_request_begin() -> Token[list[str] | None]:
    """`master_cache_request` without contextlib's generator (the tenant middleware, per request)."""
    return _request_generation.set([""])


def master_cache_request_end(token: Token[list[str] | None]) -> None:
    _request_generation.reset(token)


def _generation() -> str:
    memo = _request_generation.get()
    if memo is None:
        return _generation_read()
    if not memo[0]:
        memo[0] = _generation_read()
    return memo[0]


def _generation_read() -> str:
    global _seen, _down_since
    now = time.monotonic()
    seen_at, seen = _seen
    # A process's own cache (`TENANT_CACHE_SHARED` false) is only changed by this process, which
    # keeps `_seen` up to date itself: reading it back would cost a locmem get (about a sixth of
    # what tenancy adds to a request, issue 16) and could only lose the value to the cache's culling.
    hot = snapshot()
    if seen and (not hot.tenant_cache_shared or now - seen_at < hot.tenant_cache_generation_check_seconds):
        return seen
    if _down_since is not None:
        if now < _retry_at:
            raise _CacheDown
        generation = uuid.uuid4().hex
        _ask(cache.set, _GENERATION_KEY, generation, timeout=None)
        logger.warning("The cache answers again after %.1f s: cached master reads dropped", now - _down_since)
        _down_since = None
        _seen = (now, generation)
        return generation
    generation = _ask(cache.get, _GENERATION_KEY)
    if generation is None:
        generation = uuid.uuid4().hex
        if not _ask(cache.add, _GENERATION_KEY, generation, timeout=None):
            generation = _ask(cache.get, _GENERATION_KEY, generation)
    _seen = (now, str(generation))
    return str(generation)


def master_cache_generation() -> str | None:
    """The current generation (changes with every master change), or None when nothing is cached."""
    if snapshot().tenant_cache_timeout <= 0:
        return None
    try:
        return _generation()
    except _CacheDown:
        return None


def master_cache_deadline(read: Callable[[], T]) -> tuple[T, float]:
    """`read()`, and until when (monotonic) every cached master value it used stays in this
    process's front: what is built from them must not be kept longer (0.0: one was not cached)."""
    token = _deadline.set([math.inf])
    try:
        value = read()
        tracked = _deadline.get()
        return value, tracked[0] if tracked is not None else 0.0
    finally:
        _deadline.reset(token)


def _deadline_note(deadline: float) -> None:
    tracked = _deadline.get()
    if tracked is not None and deadline < tracked[0]:
        tracked[0] = deadline


def master_cached(key: str, compute: Callable[[], T]) -> T:
    """Return the cached value of `key` for the current master generation, computing it if absent."""
    timeout = snapshot().tenant_cache_timeout
    if timeout <= 0:
        _deadline_note(0.0)
        return compute()
    global _front
    try:
        generation = _generation()
    except _CacheDown:
        _deadline_note(0.0)
        return compute()
    front_generation, front = _front
    if front_generation != generation:
        front = {}
        _front = (generation, front)
    now = time.monotonic()
    hit = front.get(key)
    if hit is not None and hit[0] > now:
        _deadline_note(hit[0])
        return hit[1]
    full_key = f"m3saas:{generation}:{key}"
    try:
        value = _ask(cache.get, full_key)
    except _CacheDown:
        _deadline_note(0.0)
        return compute()
    if value is None:
        value = compute()
        with contextlib.suppress(_CacheDown):
            _ask(cache.set, full_key, value, timeout=timeout)
    if len(front) >= _FRONT_MAX_ENTRIES:
        front.clear()
    front[key] = (now + timeout, value)
    _deadline_note(now + timeout)
    return value


def _generation_renew() -> None:
    """Start a new generation; a cache that does not answer is left to `_generation` to renew later."""
    global _seen
    memo = _request_generation.get()
    if memo is not None:
        memo[0] = ""
    generation = uuid.uuid4().hex
    try:
        _ask(cache.set, _GENERATION_KEY, generation, timeout=None)
    except _CacheDown:
        return
    _seen = (time.monotonic(), generation)


def master_cache_invalidate() -> None:
    """Drop every cached master read (in this cache), now and again when the master commits.

    Dropping only inside the transaction would let a concurrent reader cache the old rows under
    the new generation until `TENANT_CACHE_TIMEOUT`.
    """
    _generation_renew()
    if connections[DEFAULT_DB_ALIAS].in_atomic_block:
        transaction.on_commit(_generation_renew, using=DEFAULT_DB_ALIAS)
