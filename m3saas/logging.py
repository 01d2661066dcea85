"""Logging helpers: every record carries the id of the tenant being served, or `-`."""

from __future__ import annotations

import logging

from m3saas.tenancy.context import tenant_current_or_none


class TenantFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        tenant = tenant_current_or_none()
        record.tenant = tenant.id if tenant is not None else "-"
        return True
