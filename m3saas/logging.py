"""Logging helpers: every record carries the id of the tenant being served, or `-`."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any

from m3saas.tenancy.context import tenant_current_or_none


class TenantFilter(logging.Filter):
    """Set `record.tenant`; `django.request` logs after the context is reset, so ask its request too."""

    def filter(self, record: logging.LogRecord) -> bool:
        tenant = tenant_current_or_none() or getattr(getattr(record, "request", None), "tenant", None)
        record.tenant = getattr(tenant, "id", "-") if tenant is not None else "-"
        return True


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
