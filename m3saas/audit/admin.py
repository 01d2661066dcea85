"""The audit log in the admin: readable by staff, never added, changed or deleted (not even by superusers);
and `AuditedAdminMixin`, which records what a ModelAdmin's add, change and delete views write."""

from __future__ import annotations

import json
from typing import Any

from django.contrib import admin
from django.contrib.admin.models import LogEntry
from django.db.models import Model, QuerySet
from django.http import HttpRequest

from m3saas.audit.models import AuditEntry
from m3saas.audit.services import Source, audit_record_request


def _changed(message: Any) -> Any:
    """The admin's change message (a JSON list of changed fields, never their values)."""
    if isinstance(message, str):
        try:
            return json.loads(message) if message.startswith("[") else message
        except ValueError:
            return message
    return message


class AuditedAdminMixin:
    """Put first in a ModelAdmin's bases: its adds, changes and deletions go to the audit log too.

    A custom action records itself with `self.audit(...)` (Django logs no action but deletion).
    """

    # Models whose text is a secret (a DRF token's is its key): named by their model instead.
    secret_text = False

    def audit(self, request: HttpRequest, obj: Model, verb: str, detail: dict[str, Any] | None = None) -> None:
        """Record a write of this admin on `obj` (also for actions, which Django does not log)."""
        audit_record_request(
            request,
            source=Source.ADMIN,
            action=f"{obj._meta.model_name}.{verb}",
            target=obj,
            target_repr=f"{obj._meta.verbose_name} #{obj.pk}" if self.secret_text else None,
            detail=detail,
        )

    def log_addition(self, request: HttpRequest, obj: Model, message: Any) -> LogEntry:
        entry: LogEntry = super().log_addition(request, obj, message)  # type: ignore[misc]
        self.audit(request, obj, "create")
        return entry

    def log_change(self, request: HttpRequest, obj: Model, message: Any) -> LogEntry:
        entry: LogEntry = super().log_change(request, obj, message)  # type: ignore[misc]
        self.audit(request, obj, "update", {"changed": _changed(message)})
        return entry

    def log_deletions(self, request: HttpRequest, queryset: QuerySet[Any]) -> Any:
        for obj in queryset:
            self.audit(request, obj, "delete")
        return super().log_deletions(request, queryset)  # type: ignore[misc]


def audit_every_admin(site: admin.AdminSite) -> list[str]:
    """Make every ModelAdmin of `site` that is not audited yet an audited one (Django's users and
    groups, DRF's tokens: the apps that register after ours); returns the models it wrapped.

    Run by the root URLconf, once every app's admin module has registered its models.
    """
    wrapped = []
    for model, model_admin in list(site._registry.items()):
        if isinstance(model_admin, AuditedAdminMixin) or model is AuditEntry:
            continue
        secret_text = model._meta.app_label == "authtoken"  # str(token) is the token itself
        audited = type(
            f"Audited{type(model_admin).__name__}",
            (AuditedAdminMixin, type(model_admin)),
            {"secret_text": secret_text},
        )
        site.unregister(model)
        site.register(model, audited)
        wrapped.append(model._meta.label)
    return wrapped


@admin.register(AuditEntry)
class AuditEntryAdmin(admin.ModelAdmin):
    list_display = ["at", "actor", "source", "address", "action", "target_repr"]
    list_filter = ["source", "action"]
    search_fields = ["actor", "action", "target_id", "target_repr"]
    date_hierarchy = "at"
    readonly_fields = [
        "at",
        "actor",
        "source",
        "address",
        "action",
        "target_type",
        "target_id",
        "target_repr",
        "detail",
    ]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
