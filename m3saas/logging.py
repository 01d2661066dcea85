"""Logging helpers: every record carries the id of the tenant being served, or `-`."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any, TextIO

from m3saas.tenancy.context import tenant_current_or_none


class TenantFilter(logging.Filter):
    """Set `record.tenant`; `django.request` logs after the context is reset, so ask its request too."""

    def filter(self, record: logging.LogRecord) -> bool:
        tenant = tenant_current_or_none() or getattr(getattr(record, "request", None), "tenant", None)
        record.tenant = getattr(tenant, "id", "-") if tenant is not None else "-"
        return True


# `LOG_FORMAT`: `auto` is text on a terminal and JSON otherwise (a file, a pipe, a container).
LOG_FORMATS = ("auto", "json", "text", "plain")


def log_format_resolve(choice: str, stream: TextIO) -> str:
    """`json` or `text` for a `LOG_FORMAT` choice (`plain` is the old name of `text`)."""
    if choice == "auto":
        isatty = getattr(stream, "isatty", None)
        return "text" if isatty is not None and isatty() else "json"
    return "text" if choice == "plain" else choice


class TextFormatter(logging.Formatter):
    """One readable line per record; records from outside Django (gunicorn) get tenant `-`."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s [tenant=%(tenant)s] %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        if not hasattr(record, "tenant"):
            record.tenant = "-"
        return super().format(record)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, tenant, message, and the request's status and error id."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "tenant": getattr(record, "tenant", "-"),
            "message": record.getMessage(),
        }
        for key in ("status_code", "error_id"):
            value = getattr(record, key, None)
            if value is not None:
                entry[key] = value
        error = getattr(getattr(record, "request", None), "m3saas_error", None)
        if error is not None and "error_id" not in entry:
            entry["error_id"] = error[0]
        if record.exc_info:
            entry["exc_info"] = self.formatException(record.exc_info)
        elif record.stack_info:
            entry["stack_info"] = self.formatStack(record.stack_info)
        return json.dumps(entry, default=str)
