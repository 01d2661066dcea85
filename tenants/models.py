from __future__ import annotations

from django.db import models
from django.utils import timezone

from m3saas.engines import validate_not_master
from m3saas.identifiers import validate_database_name, validate_user_name
from m3saas.tenancy.info import DEFAULT_BACKUP_LIMITS


class Tenant(models.Model):
    """A customer: its own database (`name`), database user (`user`) and backup limits."""

    class SchemaState(models.TextChoices):
        PENDING = "pending", "pending: to be provisioned, migrated and seeded"
        MIGRATING = "migrating", "migrating"
        READY = "ready", "ready"
        FAILED = "failed", "failed: the last migration failed"

    id = models.BigAutoField(primary_key=True, help_text="Used in URLs: /{id}/{module}/v{version}/")
    name = models.CharField(
        max_length=48,
        unique=True,
        validators=[validate_database_name],
        help_text="The tenant database's name and connection alias.",
    )
    user = models.CharField(
        max_length=32,
        unique=True,
        validators=[validate_user_name],
        help_text="The tenant's database user.",
    )
    password = models.CharField(
        max_length=128,
        help_text="Salted and hashed with dbSalt into the database user's password.",
    )
    per_day_backups = models.IntegerField(
        default=DEFAULT_BACKUP_LIMITS.per_day, help_text="Backups kept per day; below 1 means unlimited."
    )
    max_backups = models.IntegerField(
        default=DEFAULT_BACKUP_LIMITS.max, help_text="Backups kept overall; below 1 means unlimited."
    )
    schema_state = models.CharField(
        max_length=16,
        choices=SchemaState.choices,
        default=SchemaState.PENDING,
        help_text="Whether the database is up to date with the tenant's modules; pending after a change.",
    )
    schema_state_at = models.DateTimeField(default=timezone.now, help_text="When schema_state last changed.")

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"{self.name} (#{self.id})"

    def clean(self) -> None:
        validate_not_master(name=self.name, user=self.user)


class TenantMigrationRun(models.Model):
    """One attempt to bring a tenant's database up to date, kept in the master database.

    A run left `running` by a process that died counts as failed; the next run of its tenant
    closes it as failed, "Interrupted: …" (`tenants.services`).
    """

    class Status(models.TextChoices):
        RUNNING = "running", "running"
        OK = "ok", "ok"
        FAILED = "failed", "failed"

    class Trigger(models.TextChoices):
        COMMAND = "command", "command"
        HTTP = "http", "HTTP /migrate"
        ADMIN = "admin", "admin"
        REQUEST = "request", "first request"
        CODE = "code", "code"

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="migration_runs")
    trigger = models.CharField(max_length=16, choices=Trigger.choices, default=Trigger.COMMAND)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.RUNNING)
    started_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)
    applied = models.JSONField(default=list, blank=True, help_text="Migrations applied (app.migration).")
    seeded = models.BooleanField(default=False, help_text="Main seeds were applied.")
    error = models.TextField(blank=True, default="")

    class Meta:
        ordering = ["-started_at", "-id"]
        indexes = [models.Index(fields=["tenant", "-started_at"], name="tenant_run_latest")]

    def __str__(self) -> str:
        return f"{self.tenant_id} {self.status} at {self.started_at:%Y-%m-%d %H:%M:%S}"
