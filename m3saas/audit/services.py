"""Writing the audit log: one entry per write, from the API, the admin or a command."""

from __future__ import annotations

import getpass
import logging
from collections.abc import Mapping
from typing import Any

from django.db import DEFAULT_DB_ALIAS, DatabaseError, models
from django.http import HttpRequest

from m3saas.audit.models import AuditEntry

logger = logging.getLogger(__name__)

Source = AuditEntry.Source
# Detail keys whose values are never kept (a key, a password, a token).
_SECRET_WORDS = ("password", "secret", "token", "key")
_SAFE_KEYS = {"key_id", "keys"}


def _is_secret(name: str) -> bool:
    lowered = name.lower()
    return lowered not in _SAFE_KEYS and any(word in lowered for word in _SECRET_WORDS)


def _value_clean(value: Any) -> Any:
    if isinstance(value, Mapping):
        return audit_detail_clean(value)
    if isinstance(value, (list, tuple)):
        return [_value_clean(v) for v in value]
    return value if value is None or isinstance(value, (str, int, float, bool)) else str(value)


def audit_detail_clean(detail: Mapping[str, Any]) -> dict[str, Any]:
    """`detail` without secret-looking keys, at any depth, and with values JSON can hold (others as text)."""
    return {str(name): _value_clean(value) for name, value in detail.items() if not _is_secret(str(name))}


def request_address(request: HttpRequest) -> str:
    return str(request.META.get("REMOTE_ADDR") or "")[:64]


def system_user() -> str:
    """Who runs a command: the operating system's user."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def audit_record(
    *,
    actor: str,
    source: str,
    action: str,
    target: models.Model | None = None,
    target_type: str = "",
    target_id: str | int = "",
    address: str = "",
    detail: Mapping[str, Any] | None = None,
    target_repr: str | None = None,
) -> AuditEntry:
    """Append one entry to the audit log (in the master); `target` names the row written
    (`target_repr` instead of its text, where that text is a secret)."""
    if target is not None:
        target_type = target_type or target._meta.label_lower
        target_id = target_id or str(target.pk)
        target_repr = (target_repr if target_repr is not None else str(target))[:200]
    else:
        target_repr = target_repr if target_repr is not None else str(target_id)
    entry = AuditEntry(
        actor=actor[:150],
        source=source,
        address=address,
        action=action[:64],
        target_type=target_type[:64],
        target_id=str(target_id)[:64],
        target_repr=target_repr,
        detail=audit_detail_clean(detail or {}),
    )
    entry.save(using=DEFAULT_DB_ALIAS)
    return entry


def audit_record_request(
    request: HttpRequest, *, source: str, action: str, target: models.Model | None = None, **kwargs: Any
) -> AuditEntry:
    """`audit_record` for a write made by the signed-in user of `request`."""
    user = getattr(request, "user", None)
    actor = user.get_username() if user is not None and user.is_authenticated else "anonymous"
    return audit_record(
        actor=actor, source=source, action=action, target=target, address=request_address(request), **kwargs
    )


def audit_record_command(*, command: str, options: Mapping[str, Any], ok: bool) -> AuditEntry | None:
    """Record a command's run; an unreachable master is logged, not raised over the command's own outcome."""
    try:
        return audit_record(
            actor=system_user(),
            source=Source.COMMAND,
            action=f"command.{command}",
            detail={"options": options, "ok": ok},
        )
    except DatabaseError:
        # E.g. a master not migrated yet: the command's own outcome matters more than its entry.
        logger.warning("The audit entry of command %s could not be written", command)
        return None
