from __future__ import annotations

from typing import Any, NoReturn

from django.db import models
from django.utils import timezone


class AuditLogAppendOnlyError(RuntimeError):
    """An audit entry was to be changed or deleted: the log only grows."""


def _refuse(what: str) -> NoReturn:
    raise AuditLogAppendOnlyError(f"The audit log is append-only: an entry cannot be {what}.")


class AuditEntryQuerySet(models.QuerySet["AuditEntry"]):
    """Refuses the bulk roads around `save()`/`delete()` too."""

    def update(self, **kwargs: Any) -> int:
        _refuse("updated")

    def delete(self) -> tuple[int, dict[str, int]]:
        _refuse("deleted")

    def bulk_update(self, objs: Any, fields: Any, batch_size: int | None = None) -> int:
        _refuse("updated")


class AuditEntry(models.Model):
    """One write by an operator, in the master database; never changed nor deleted by the application."""

    class Source(models.TextChoices):
        API = "api", "operator API"
        ADMIN = "admin", "admin"
        COMMAND = "manage.py", "manage.py"

    id = models.BigAutoField(primary_key=True)
    at = models.DateTimeField(default=timezone.now, db_index=True)
    actor = models.CharField(max_length=150, help_text="The staff user, or the system user of a command.")
    source = models.CharField(max_length=16, choices=Source.choices)
    address = models.CharField(max_length=64, blank=True, default="", help_text="The client's IP address.")
    action = models.CharField(max_length=64, help_text="What was done, e.g. tenant.create.")
    target_type = models.CharField(max_length=64, blank=True, default="")
    target_id = models.CharField(max_length=64, blank=True, default="")
    target_repr = models.CharField(max_length=200, blank=True, default="")
    detail = models.JSONField(default=dict, blank=True, help_text="What changed; never a secret.")

    objects = AuditEntryQuerySet.as_manager()

    class Meta:
        ordering = ["-at", "-id"]
        verbose_name_plural = "audit entries"

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M:%S} {self.actor} ({self.source}): {self.action} {self.target_repr}".rstrip()

    def save(self, *args: Any, **kwargs: Any) -> None:
        if not self._state.adding:
            _refuse("updated")
        super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> tuple[int, dict[str, int]]:
        _refuse("deleted")
