"""Requests and errors per tenant and hour, counted in the shared cache for the admin's status page.

One cache increment per request (two for an error), never a database write: the counters live in
`CACHES["default"]` (Redis when `REDIS_URL` is set, shared by every process), one key per tenant,
hour and kind, kept a little over a day. A cache that does not answer loses counts, never a
request. Measured (README, "The admin"): about 2 µs per request on the local-memory cache and
about 0.1 ms on the local Redis, next to a request of a few milliseconds.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass

from django.core.cache import cache

from m3saas.access import cache_count

logger = logging.getLogger(__name__)

HOUR = 3600
# The chart shows the last 24 hours; an hour's counters outlive it a little.
KEEP_SECONDS = 26 * HOUR
REQUESTS = "req"
ERRORS = "err"


def _key(tenant_id: int, hour: int, kind: str) -> str:
    return f"m3saas:traffic:{tenant_id}:{hour}:{kind}"


def traffic_count(*, tenant_id: int, status_code: int, now: float | None = None) -> None:
    """Count one request of `tenant_id`, and an error when its status is 500 or more."""
    hour = int((time.time() if now is None else now) // HOUR)
    try:
        cache_count(_key(tenant_id, hour, REQUESTS), timeout=KEEP_SECONDS)
        if status_code >= 500:
            cache_count(_key(tenant_id, hour, ERRORS), timeout=KEEP_SECONDS)
    except Exception as exc:  # any cache backend's own error: the request goes on uncounted
        logger.debug("traffic not counted: %s", exc)


@dataclass(frozen=True)
class TenantTraffic:
    """One tenant's counts for each of the last hours, oldest first."""

    tenant_id: int
    hours: tuple[int, ...]  # the hours' numbers (seconds since the epoch // 3600)
    requests: tuple[int, ...]
    errors: tuple[int, ...]

    @property
    def total_requests(self) -> int:
        return sum(self.requests)

    @property
    def total_errors(self) -> int:
        return sum(self.errors)


def traffic_list(*, tenant_ids: Iterable[int], hours: int = 24, now: float | None = None) -> list[TenantTraffic]:
    """The counts of each tenant over the last `hours` hours (the current one included), in one
    cache round trip; a cache that does not answer gives zeros."""
    ids = list(tenant_ids)
    last = int((time.time() if now is None else now) // HOUR)
    span = tuple(range(last - hours + 1, last + 1))
    keys = [_key(t, h, kind) for t in ids for h in span for kind in (REQUESTS, ERRORS)]
    try:
        found = cache.get_many(keys) if keys else {}
    except Exception as exc:  # the status page still shows the rest
        logger.warning("traffic counters not read: %s", exc)
        found = {}
    return [
        TenantTraffic(
            tenant_id=t,
            hours=span,
            requests=tuple(int(found.get(_key(t, h, REQUESTS), 0)) for h in span),
            errors=tuple(int(found.get(_key(t, h, ERRORS), 0)) for h in span),
        )
        for t in ids
    ]
