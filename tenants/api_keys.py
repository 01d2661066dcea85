"""Tenant API keys: making, listing and revoking them, and checking one on a request.

A warm check makes no master query: a key's record is cached like the tenants (per master
generation, dropped on every change to a key or a tenant), and a key this process has verified
is found by its digest for the rest of that generation, and no longer than the cached record it
was checked against (its tenant, revocation and expiry still read on every request).
`last_used_at` is written at most once a minute per key.

Unknown key ids are cheap too, so a flood of made-up keys (each with another random id) does
not reach the master: the ids of all keys are cached as one index per generation, and an id
outside it is refused without a query. Making a key changes the generation, so a new key is
never refused for a stale index. Past `KEY_INDEX_MAX` keys no index is kept; then each unknown
id is remembered for `UNKNOWN_ID_SECONDS` in a bounded per-process set, stamped with the
generation (a key made with that id later is found at once), and never in the shared cache,
which random ids would otherwise fill.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from m3saas.access import (
    ApiKeyInfo,
    NotAuthenticatedError,
    RateLimit,
    key_digest,
    key_generate,
    key_id_of,
    key_mark_used,
    key_matches,
    rate_limit_parse,
)
from m3saas.exceptions import ApplicationError, TenantNotFoundError
from m3saas.identifiers import is_digits
from m3saas.settings_snapshot import snapshot
from m3saas.tenancy.cache import master_cache_deadline, master_cache_generation, master_cached
from tenants.models import ApiKey, Tenant


class ApiKeyError(ApplicationError):
    code = "invalid_api_key"
    default_message = "The API key cannot be made."


@dataclass(frozen=True)
class _Lookup:
    """A cached look-up of a key that exists."""

    info: ApiKeyInfo


def tenant_get_by_ref(ref: str) -> Tenant:
    """The tenant whose id or name is `ref`; raises `TenantNotFoundError`."""
    lookup: dict[str, object] = {"pk": int(ref)} if is_digits(ref) else {"name": ref}
    tenant = Tenant.objects.filter(**lookup).first()
    if tenant is None:
        raise TenantNotFoundError(f"No tenant with id or name {ref!r}.")
    return tenant


def api_key_create(
    *,
    tenant: Tenant,
    name: str = "",
    modules: str = "",
    read_only: bool = False,
    expires_at: datetime | None = None,
    rate_limit: str = "",
) -> tuple[ApiKey, str]:
    """Make a key for `tenant`; return the row and the whole key, which exists nowhere else."""
    key_id, key = key_generate()
    row = ApiKey(
        id=key_id,
        tenant=tenant,
        name=name,
        digest=key_digest(key),
        modules=",".join(m.strip() for m in modules.split(",") if m.strip()),
        read_only=read_only,
        expires_at=expires_at,
        rate_limit=rate_limit,
    )
    try:
        row.full_clean()
    except ValidationError as exc:
        raise ApiKeyError("; ".join(f"{k}: {' '.join(v)}" for k, v in exc.message_dict.items())) from None
    with transaction.atomic():
        row.save(force_insert=True)
    return row, key


def api_key_revoke(*, key_id: str) -> ApiKey:
    """Refuse the key with `key_id` from the next request on; raises `ApiKeyError` for an unknown id."""
    row = ApiKey.objects.filter(pk=key_id).first()
    if row is None:
        raise ApiKeyError(f"No API key with id {key_id!r}.")
    if row.revoked_at is None:
        row.revoked_at = timezone.now()
        row.save(update_fields=["revoked_at"])
    return row


def api_key_list(*, tenant: Tenant) -> list[ApiKey]:
    return list(ApiKey.objects.filter(tenant=tenant).order_by("created_at", "id"))


def _info(row: ApiKey) -> ApiKeyInfo:
    return ApiKeyInfo(
        id=row.id,
        tenant_id=row.tenant_id,
        name=row.name,
        digest=row.digest,
        modules=row.module_list,
        read_only=row.read_only,
        expires_at=row.expires_at,
        revoked=row.revoked_at is not None,
        rate_limit=rate_limit_parse(row.rate_limit) if row.rate_limit else None,
        tenant_rate_limit=row.tenant.rate_limit,
    )


# Up to this many keys, their ids are cached as one index (8 bytes each); past it, unknown ids
# are remembered one by one.
KEY_INDEX_MAX = 50_000
UNKNOWN_ID_SECONDS = 30.0
UNKNOWN_ID_MAX = 10_000
# Unknown ids this process looked up: id → (generation, monotonic deadline), oldest first.
_unknown: OrderedDict[str, tuple[str, float]] = OrderedDict()
_unknown_lock = threading.Lock()


@dataclass(frozen=True)
class _Index:
    """The ids of every key, or None when there are more than `KEY_INDEX_MAX`."""

    ids: frozenset[str] | None


class _NoSuchKey(Exception):
    """Raised by a look-up so that `master_cached` keeps nothing for an unknown id."""


def _key_index() -> frozenset[str] | None:
    def load() -> _Index:
        ids = list(ApiKey.objects.order_by().values_list("id", flat=True)[: KEY_INDEX_MAX + 1])
        return _Index(ids=frozenset(ids) if len(ids) <= KEY_INDEX_MAX else None)

    return master_cached("apikey-index", load).ids


def _unknown_seen(key_id: str, generation: str) -> bool:
    found = _unknown.get(key_id)
    return found is not None and found[0] == generation and found[1] > time.monotonic()


def _unknown_remember(key_id: str, generation: str) -> None:
    with _unknown_lock:
        _unknown.pop(key_id, None)
        _unknown[key_id] = (generation, time.monotonic() + UNKNOWN_ID_SECONDS)
        while len(_unknown) > UNKNOWN_ID_MAX:
            _unknown.popitem(last=False)


def api_key_info_get(*, key_id: str) -> ApiKeyInfo | None:
    """The key with `key_id` as the platform sees it (cached), or None."""
    generation = master_cache_generation()  # None: nothing is cached (turned off, or the cache is down)
    index = _key_index() if generation is not None else None
    if index is not None and key_id not in index:
        return None
    if generation is not None and index is None and _unknown_seen(key_id, generation):
        return None

    def load() -> _Lookup:
        row = ApiKey.objects.select_related("tenant").filter(pk=key_id).first()
        if row is None:
            raise _NoSuchKey
        return _Lookup(info=_info(row))

    try:
        return master_cached(f"apikey:{key_id}", load).info
    except _NoSuchKey:
        if generation is not None:
            _unknown_remember(key_id, generation)
        return None


def _tenant_limit(own: str) -> RateLimit | None:
    limit: RateLimit | None = rate_limit_parse(own) if own else snapshot().tenant_rate_limit
    return limit


def tenant_rate_limit_get(*, tenant_id: int, api_key: ApiKeyInfo | None = None) -> RateLimit | None:
    """The tenant's request limit: its own (admin), else `TENANT_RATE_LIMIT`; None: no limit.

    Read with the caller's key when there is one (no second look-up), else cached on its own.
    """
    if api_key is not None:
        return _tenant_limit(api_key.tenant_rate_limit)
    own = master_cached(
        f"tenant:rate:{tenant_id}",
        lambda: Tenant.objects.filter(pk=tenant_id).values_list("rate_limit", flat=True).first() or "",
    )
    return _tenant_limit(own)


# Keys this process recorded as used recently: key id → monotonic time to record again.
_used_front: dict[str, float] = {}
_USED_INTERVAL = 60


def _record_use(key_id: str, now: float) -> None:
    """Record the key's use in the master at most once a minute (`now`: time.monotonic())."""
    if _used_front.get(key_id, 0.0) > now:
        return
    if len(_used_front) > 100_000:
        _used_front.clear()
    _used_front[key_id] = now + _USED_INTERVAL
    if key_mark_used(key_id, interval=_USED_INTERVAL):
        ApiKey.objects.filter(pk=key_id).update(last_used_at=timezone.now())


# Keys this process has verified: the whole key's BLAKE2b digest → (master generation, the cached
# record's monotonic expiry, record). Only a key that matched its record's SHA-256 is kept, so an
# unknown or wrong key is never found here, and anything that changes a key or its tenant changes
# the generation.
# BLAKE2b is CPython's own (`_blake2`): on a warm request it spares a call into OpenSSL, which
# measured several times dearer inside the busy server than in a loop (issue 16).
_verified: dict[bytes, tuple[str, float, ApiKeyInfo]] = {}
VERIFIED_MAX = 100_000


def api_key_authenticate(*, key: str, tenant_id: int, generation: str | None) -> ApiKeyInfo:
    """The key's record if `key` is a usable key of tenant `tenant_id`; else `NotAuthenticatedError`.

    `generation` is the request's master generation (`master_cache_generation()`), which the
    tenant middleware reads once for the key and the route. Every failure (malformed, unknown,
    wrong secret, revoked, expired, another tenant's) is the same error, so the answer says
    nothing about the tenant.
    """
    seen = hashlib.blake2b(key.encode()).digest()
    verified = _verified.get(seen)
    now = time.monotonic()
    if verified is not None and verified[0] == generation and verified[1] > now:
        info = verified[2]
    else:
        key_id = key_id_of(key)
        if key_id is None:
            raise NotAuthenticatedError()
        found, expires = master_cache_deadline(lambda: api_key_info_get(key_id=key_id))
        if found is None or not key_matches(key, found.digest):
            raise NotAuthenticatedError()
        info = found
        if generation is not None:
            if len(_verified) >= VERIFIED_MAX:
                _verified.clear()
            # Kept no longer than the cached record it was checked against.
            _verified[seen] = (generation, expires, info)
    if info.tenant_id != tenant_id or not info.usable():
        raise NotAuthenticatedError()
    _record_use(info.id, now)
    return info
