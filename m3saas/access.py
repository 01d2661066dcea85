"""Who may call a module view: tenant API keys, public views, rate limits.

The platform part of access control; the keys themselves live in the tenants app (`ApiKey`),
and the check runs in `tenants.middleware.TenantMiddleware` before the module view.

- A key reads `m3s_<8-char id>_<secret>`; only the SHA-256 of the whole key is stored. The
  secret carries 238 random bits, so a fast hash is as safe as a slow one and costs
  microseconds per request; digests are compared in constant time.
- A module view that anyone may call says so with `@public_api` (a class or a function view).
- A staff user's admin session may read (GET, HEAD, OPTIONS) any tenant's module API without a
  key, so an operator can browse it; it never writes. Other sessions count for nothing.
- `MODULE_API_ACCESS=public` turns keys off for every module (the original's open API);
  `manage.py check` warns while it is on.
- Rate limits count requests per fixed window on `CACHES["default"]`, with the cache's atomic
  `incr`: on a shared cache (Redis) the limits hold across processes. A process takes a share of a
  window's budget at a time (1/256 of the limit, 1 to 64 requests) with one `incr`, and serves
  that many requests without asking the cache again: never more than the limit in all is let
  through, and at most a share per process goes unused when a window ends (issue 16: the counter
  round trip was a quarter of what tenancy added to a request).
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import logging
import math
import re
import secrets
import string
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from django.core.cache import cache
from django.core.checks import CheckMessage, Warning, register
from django.utils import timezone

from m3saas.exceptions import ApplicationError
from m3saas.settings_snapshot import snapshot

logger = logging.getLogger(__name__)

KEY_PREFIX = "m3s"
KEY_ID_LENGTH = 8
KEY_SECRET_LENGTH = 40
_KEY_ID_ALPHABET = string.ascii_lowercase + string.digits
_SECRET_ALPHABET = string.ascii_letters + string.digits
_KEY_RE = re.compile(rf"^{KEY_PREFIX}_(?P<id>[a-z0-9]{{{KEY_ID_LENGTH}}})_(?P<secret>[A-Za-z0-9]{{20,128}})$")
_AUTH_SCHEMES = ("bearer", "api-key")
ACCESS_KEYS = "keys"
ACCESS_PUBLIC = "public"
ACCESS_CHOICES = (ACCESS_KEYS, ACCESS_PUBLIC)
# HTTP methods a read-only key may use.
READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class NotAuthenticatedError(ApplicationError):
    status_code = 401
    code = "not_authenticated"
    default_message = "A valid API key is required: send `Authorization: Bearer <key>`."


class KeyNotAllowedError(ApplicationError):
    status_code = 403
    code = "permission_denied"
    default_message = "This API key may not do this."


class ThrottledError(ApplicationError):
    status_code = 429
    code = "throttled"
    default_message = "Too many requests."

    def __init__(self, retry_after: int) -> None:
        self.retry_after = retry_after
        super().__init__(f"Too many requests; retry in {retry_after} s.")


@dataclass(frozen=True)
class ApiKeyInfo:
    """What the platform knows of a key (cached); `request.api_key` in a module view."""

    id: str
    tenant_id: int
    name: str
    digest: str
    modules: tuple[str, ...] = ()
    read_only: bool = False
    expires_at: datetime | None = None
    revoked: bool = False
    rate_limit: RateLimit | None = None
    # The key's tenant's own limit as the admin holds it ("": the default), read with the key.
    tenant_rate_limit: str = ""

    def usable(self, *, now: datetime | None = None) -> bool:
        """Not revoked, not expired at `now` (default: the current time, read only for a key that expires)."""
        if self.revoked:
            return False
        return self.expires_at is None or self.expires_at > (now or timezone.now())

    def allows(self, *, module: str, method: str) -> bool:
        """Whether the key's limits let it call `module` with `method`."""
        if self.modules and module not in self.modules:
            return False
        return not self.read_only or method.upper() in READ_METHODS


def key_generate() -> tuple[str, str]:
    """A new key: `(key id, the whole key)`; the whole key is shown once and never stored."""
    key_id = "".join(secrets.choice(_KEY_ID_ALPHABET) for _ in range(KEY_ID_LENGTH))
    secret = "".join(secrets.choice(_SECRET_ALPHABET) for _ in range(KEY_SECRET_LENGTH))
    return key_id, f"{KEY_PREFIX}_{key_id}_{secret}"


def key_digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def key_matches(key: str, digest: str) -> bool:
    return hmac.compare_digest(key_digest(key), digest)


def key_id_of(key: str) -> str | None:
    """The id part of a well-formed key, or None."""
    match = _KEY_RE.match(key)
    return match["id"] if match else None


def key_from_header(header: str) -> str | None:
    """The key of `Authorization: Bearer <key>` or `Api-Key <key>`; '' when another scheme or
    a malformed value was sent (a caller that tried to authenticate), None when nothing was."""
    if not header:
        return None
    if header.startswith("Bearer "):  # the usual form, read without splitting
        return header[7:].strip()
    scheme, _, value = header.strip().partition(" ")
    if scheme.lower() not in _AUTH_SCHEMES:
        return ""
    return value.strip()


V = TypeVar("V")


def public_api(view: V) -> V:
    """Mark a module view (class or function) as callable without an API key."""
    view.public_api = True  # type: ignore[attr-defined]
    return view


def view_is_public(func: Any) -> bool:
    """Whether a resolved view function (or the class behind it) is marked `@public_api`."""
    return bool(getattr(func, "public_api", False) or getattr(getattr(func, "view_class", None), "public_api", False))


def request_is_staff_session(request: Any) -> bool:
    """Whether an active staff user is logged in (the admin's session); a DRF request or Django's."""
    user = getattr(getattr(request, "_request", request), "user", None)
    return bool(user is not None and user.is_active and user.is_staff)


def module_api_access() -> str:
    return snapshot().module_api_access


def module_api_access_parse(text: str) -> str:
    value = text.strip().lower()
    if value not in ACCESS_CHOICES:
        raise ValueError(f"{text!r} is not one of {', '.join(ACCESS_CHOICES)}")
    return value


@register("m3saas", "security")
def check_module_api_access(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    if module_api_access() != ACCESS_PUBLIC:
        return []
    return [
        Warning(
            "MODULE_API_ACCESS=public: every module API is open to anyone who knows a tenant id.",
            hint="Unset MODULE_API_ACCESS to require tenant API keys (views marked @public_api stay open).",
            id="m3saas.W010",
        )
    ]


# Rate limits ---------------------------------------------------------------------------------

_PERIODS = {
    "s": 1,
    "sec": 1,
    "second": 1,
    "m": 60,
    "min": 60,
    "minute": 60,
    "h": 3600,
    "hour": 3600,
    "d": 86400,
    "day": 86400,
}
_RATE_RE = re.compile(r"^\s*(?P<count>[0-9]{1,9})\s*/\s*(?P<period>[a-z]+)\s*$")
RATE_LIMIT_HELP = "a number of requests per period, e.g. 600/min (periods: s, min, hour, day), or off"


@dataclass(frozen=True)
class RateLimit:
    requests: int
    seconds: int

    def __str__(self) -> str:
        names = {1: "s", 60: "min", 3600: "hour", 86400: "day"}
        return f"{self.requests}/{names[self.seconds]}"


@functools.lru_cache(maxsize=256)
def rate_limit_parse(text: str) -> RateLimit | None:
    """`600/min` → RateLimit(600, 60); `off` → None (no limit); anything else raises ValueError."""
    if text.strip().lower() in {"off", "none", "0"}:
        return None
    match = _RATE_RE.match(text.lower())
    if match is None or match["period"] not in _PERIODS or int(match["count"]) < 1:
        raise ValueError(f"{text!r} is not {RATE_LIMIT_HELP}")
    return RateLimit(requests=int(match["count"]), seconds=_PERIODS[match["period"]])


def cache_count(key: str, timeout: int, delta: int = 1) -> int:
    """Add `delta` to the counter `key` in the shared cache (made with `timeout` when missing)."""
    try:
        return int(cache.incr(key, delta))
    except ValueError:
        if cache.add(key, delta, timeout=timeout):
            return delta
        return int(cache.incr(key, delta))


# When a failing cache was last reported (time.monotonic()): once a minute is enough.
_cache_failure_logged_at: float | None = None


def _cache_failed(exc: Exception) -> None:
    global _cache_failure_logged_at
    now = time.monotonic()
    if _cache_failure_logged_at is None or now - _cache_failure_logged_at >= 60:
        _cache_failure_logged_at = now
        logger.warning("The cache does not answer (%s): rate limits are not counted until it does", exc)


# This process's unused share of each rate-limit counter: (scope, period, window, the limit's
# requests) → requests it may still serve in that window without asking the cache; -1: the
# window's budget is spent, refused without asking until the window ends (also if the cache is
# emptied meanwhile: the other processes then count from zero, this one waits for the next window).
# The counter's cache key is only made when the cache is asked.
RATE_SHARE_DIVISOR = 256
RATE_SHARE_MAX = 64
_shares: dict[tuple[str, int, int, int], int] = {}
_shares_lock = threading.Lock()
_SHARES_MAX_ENTRIES = 10_000


def _throttled(window: int, limit: RateLimit, now: float) -> ThrottledError:
    """The refusal of a request in `window`, with the seconds until the next one."""
    return ThrottledError(retry_after=max(1, math.ceil((window + 1) * limit.seconds - now)))


def rate_limit_hit(scope: str, limit: RateLimit | None) -> None:
    """Count one request of `scope` (e.g. `tenant:7`); raise `ThrottledError` past `limit`.

    A cache that does not answer fails open (logged): losing the limits for a while is better
    than refusing every tenant's requests.
    """
    if limit is None:
        return
    now = time.time()
    window = int(now // limit.seconds)
    # Kept per limit as well: a limit raised mid-window is not held to the old one's spent mark.
    local = (scope, limit.seconds, window, limit.requests)
    with _shares_lock:
        left = _shares.get(local, 0)
        if left > 0:
            _shares[local] = left - 1
            return
    if left < 0:  # this window's budget is spent (the counter only grows): no round trip either
        raise _throttled(window, limit, now)
    share = max(1, min(RATE_SHARE_MAX, limit.requests // RATE_SHARE_DIVISOR))
    key = f"m3saas:rate:{scope}:{limit.seconds}:{window}"
    try:
        # Kept twice the window: a key that expired between Redis' EXISTS and INCR would live forever.
        count = cache_count(key, timeout=2 * limit.seconds, delta=share)
    except Exception as exc:  # any cache backend's own error
        _cache_failed(exc)
        return
    # The requests of this share that are still within the limit (the counter counted them all).
    granted = min(share, limit.requests - (count - share))
    if granted <= 0:
        with _shares_lock:
            _shares[local] = -1
        raise _throttled(window, limit, now)
    if granted > 1:
        with _shares_lock:
            if len(_shares) >= _SHARES_MAX_ENTRIES:
                _shares.clear()  # mostly past windows' keys
            _shares[local] = _shares.get(local, 0) + granted - 1


def rate_limit_shares_forget() -> None:
    """Drop this process's unused shares (with the counters they came from, e.g. a cleared cache)."""
    with _shares_lock:
        _shares.clear()


def key_mark_used(key_id: str, *, interval: int = 60) -> bool:
    """True at most once per `interval` seconds per key (per shared cache): time to record the use."""
    try:
        return bool(cache.add(f"m3saas:key-used:{key_id}", 1, timeout=interval))
    except Exception as exc:  # a failing cache: skip recording rather than fail the request
        _cache_failed(exc)
        return False
