"""`Idempotency-Key` on module writes: a retried request is answered, not run again.

A client that sends `Idempotency-Key: <key>` on a POST, PUT, PATCH or DELETE of a module route
gets, for a day, the response of the first request with that key (`Idempotent-Replayed: true`)
instead of a second run. The key is the tenant's: it is kept in the tenant's own database.

How a keyed request runs (`IdempotencyMiddleware`, after the tenant middleware):

1. Claim: insert the key's row (digest, request fingerprint, a fresh token) and commit it at
   once. A row already there is a finished request (replay it), another request (422 when its
   fingerprint differs, else 409 while it runs) or an expired one (removed first).
2. Run the view inside `transaction.atomic(using=<tenant alias>)` and, in that same transaction,
   store the response on the claimed row, on condition that the token is still ours. The
   request's writes and its stored response commit together: a worker that dies after the
   commit leaves a replayable answer; one that dies before it leaves no write.
3. A response that is not kept (5xx, transient refusals, streams) releases the claim; a 5xx
   also rolls the request's writes back, so the retry runs on a clean slate.

A claim whose request died before committing stands for `IDEMPOTENCY_KEY_LEASE` seconds (409
meanwhile); then the next request with the key takes it over. The token condition in step 2
keeps that safe even when the first request was only slow: it finds its claim taken, rolls
its writes back and answers 409, so only one of them ever commits.
"""

from __future__ import annotations

import hashlib
import logging
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.http import HttpRequest, HttpResponse
from django.utils import timezone

from m3saas.api import error_response
from m3saas.bookkeeping.models import IdempotencyKey
from m3saas.exceptions import ApplicationError
from m3saas.tenancy.context import tenant_current_or_none

logger = logging.getLogger(__name__)

HEADER = "Idempotency-Key"
# The header as WSGI and ASGI name it in `request.META`, read only for a write: `request.headers`
# copies every header of the request (DRF's views build it anyway; a plain Django view need not).
_META_NAME = "HTTP_" + HEADER.upper().replace("-", "_")
REPLAYED_HEADER = "Idempotent-Replayed"
METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
KEY_MAX_LENGTH = 255
_KEY_RE = re.compile(r"[\x20-\x7e]+")
# The caller's credentials: a key is bound to them, so another caller never gets its response.
CALLER_HEADERS = ("Authorization", "X-Api-Key")
# Response headers that are part of the answer, replayed with it.
STORED_HEADERS = (
    "Content-Type",
    "Location",
    "Allow",
    "ETag",
    "Last-Modified",
    "Content-Language",
    "Content-Disposition",
)
# Answers about the moment rather than about the request: a retry may get another one.
_TRANSIENT_STATUSES = frozenset({401, 403, 408, 409, 423, 425, 429})


class IdempotencyKeyInvalidError(ApplicationError):
    code = "idempotency_key_invalid"
    default_message = f"The {HEADER} header must be 1 to {KEY_MAX_LENGTH} printable ASCII characters."


class IdempotencyKeyReusedError(ApplicationError):
    status_code = 422
    code = "idempotency_key_reused"
    default_message = f"This {HEADER} was used for another request (method, path or body differ)."


class IdempotencyKeyInProgressError(ApplicationError):
    status_code = 409
    code = "idempotency_key_in_progress"
    default_message = f"A request with this {HEADER} is still running; retry shortly."


@dataclass(frozen=True)
class StoredResponse:
    status_code: int
    headers: dict[str, str]
    body: bytes


def key_lifetime() -> timedelta:
    return timedelta(seconds=int(settings.IDEMPOTENCY_KEY_LIFETIME))


def key_lease() -> timedelta:
    return timedelta(seconds=int(settings.IDEMPOTENCY_KEY_LEASE))


def idempotency_key_digest(raw: str) -> str:
    """The stored form of a header value; refuses one that is empty, too long or not printable ASCII."""
    if len(raw) > KEY_MAX_LENGTH or not _KEY_RE.fullmatch(raw) or not raw.strip():
        raise IdempotencyKeyInvalidError()
    return hashlib.sha256(raw.encode("ascii")).hexdigest()


def request_fingerprint(request: HttpRequest) -> str:
    """What makes a retry the same request: method, path and query, media type, credentials, body bytes.

    The credentials count because a module may authenticate in its views, after this
    middleware: a caller without them must never be handed another caller's response.
    """
    media_type = (request.content_type or "").split(";")[0].strip().lower()
    parts = [request.method or "", request.get_full_path(), media_type]
    parts += [request.headers.get(name, "") for name in CALLER_HEADERS]
    api_key = getattr(request, "api_key", None)
    if api_key is not None:
        # The key the platform authenticated, however its header was spelt (`Bearer`, `Api-Key`).
        parts[3] = f"api-key:{api_key.id}"
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part.encode("utf-8", "surrogateescape") + b"\n")
    digest.update(request.body)
    return digest.hexdigest()


def idempotency_key_claim(*, alias: str, digest: str, fingerprint: str, now: datetime) -> str | StoredResponse:
    """Claim the key for a new run (returns its token) or return the response to replay.

    Raises `IdempotencyKeyReusedError` for another request's key and
    `IdempotencyKeyInProgressError` while the key's first request runs. Commits at once:
    call it outside any transaction on `alias`.
    """
    rows = IdempotencyKey.objects.using(alias)
    # Expired keys go lazily, this one included, so that it can be claimed afresh.
    rows.filter(created_at__lt=now - key_lifetime()).delete()
    token = uuid.uuid4().hex
    try:
        with transaction.atomic(using=alias):
            rows.create(digest=digest, fingerprint=fingerprint, token=token, created_at=now)
        return token
    except IntegrityError:
        pass
    row = rows.filter(digest=digest).first()
    if row is None:
        # Released between our insert and this read: its request failed; the client may retry.
        raise IdempotencyKeyInProgressError()
    if row.fingerprint != fingerprint:
        raise IdempotencyKeyReusedError()
    if row.completed and row.status_code is not None:
        return StoredResponse(status_code=row.status_code, headers=dict(row.headers), body=bytes(row.body))
    # A claim past its lease: its request died before committing. One taker wins it.
    stale = row.created_at < now - key_lease()
    if stale and rows.filter(pk=row.pk, token=row.token, completed=False).update(token=token, created_at=now):
        logger.warning("idempotency key claim %s… abandoned; taken over", digest[:12])
        return token
    raise IdempotencyKeyInProgressError()


def idempotency_key_complete(*, alias: str, digest: str, token: str, response: HttpResponse) -> bool:
    """Store `response` on the claimed row, in the caller's transaction; False if the claim was lost."""
    headers = {name: str(response[name]) for name in STORED_HEADERS if name in response}
    return bool(
        IdempotencyKey.objects.using(alias)
        .filter(digest=digest, token=token, completed=False)
        .update(completed=True, status_code=response.status_code, headers=headers, body=response.content)
    )


def idempotency_key_release(*, alias: str, digest: str, token: str) -> None:
    """Drop a claim whose response is not kept, so that a retry runs the request again."""
    IdempotencyKey.objects.using(alias).filter(digest=digest, token=token, completed=False).delete()


def idempotency_keys_purge(*, alias: str, now: datetime | None = None) -> int:
    """Delete the keys older than `IDEMPOTENCY_KEY_LIFETIME`; returns how many went."""
    cutoff = (now or timezone.now()) - key_lifetime()
    deleted, _ = IdempotencyKey.objects.using(alias).filter(created_at__lt=cutoff).delete()
    return deleted


def is_kept(response: HttpResponse) -> bool:
    return not response.streaming and response.status_code < 500 and response.status_code not in _TRANSIENT_STATUSES


def replay(stored: StoredResponse) -> HttpResponse:
    response = HttpResponse(stored.body, status=stored.status_code)
    for name, value in stored.headers.items():
        response[name] = value
    response[REPLAYED_HEADER] = "true"
    return response


def _refusal(exc: ApplicationError) -> HttpResponse:
    response = error_response(exc)
    if isinstance(exc, IdempotencyKeyInProgressError):
        response["Retry-After"] = "1"
    return response


class IdempotencyMiddleware:
    """Runs a keyed module write once per key and tenant; place it after the tenant middleware."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.method not in METHODS:
            return self.get_response(request)
        raw = request.META.get(_META_NAME)
        tenant = tenant_current_or_none()
        if raw is None or tenant is None:
            return self.get_response(request)
        alias = tenant.alias
        try:
            digest = idempotency_key_digest(raw)
            claim = idempotency_key_claim(
                alias=alias, digest=digest, fingerprint=request_fingerprint(request), now=timezone.now()
            )
        except ApplicationError as exc:
            return _refusal(exc)
        if isinstance(claim, StoredResponse):
            return replay(claim)
        return self._run(request, alias=alias, digest=digest, token=claim)

    def _run(self, request: HttpRequest, *, alias: str, digest: str, token: str) -> HttpResponse:
        kept = False
        try:
            with transaction.atomic(using=alias):
                response = self.get_response(request)
                if response.status_code >= 500:
                    # Nothing of a failed request stays: its retry starts from a clean slate.
                    transaction.set_rollback(True, using=alias)
                elif is_kept(response) and not transaction.get_rollback(using=alias):
                    kept = idempotency_key_complete(alias=alias, digest=digest, token=token, response=response)
                    if not kept:
                        # A later request took the claim over (ours outlived its lease): it alone writes.
                        transaction.set_rollback(True, using=alias)
                        return _refusal(IdempotencyKeyInProgressError())
        finally:
            if not kept:
                try:
                    idempotency_key_release(alias=alias, digest=digest, token=token)
                except Exception:
                    # The claim then stands until its lease ends; the response still goes out.
                    logger.exception("releasing idempotency key claim %s… failed", digest[:12])
        return response
