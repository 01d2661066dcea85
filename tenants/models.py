from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from django.core.exceptions import ValidationError
from django.db import models
from django.utils import timezone

from m3saas.access import KEY_ID_LENGTH, KEY_PREFIX, RATE_LIMIT_HELP, key_generate, rate_limit_parse
from m3saas.conf import SERVER_NAME_RE
from m3saas.engines import validate_not_master
from m3saas.fields import EncryptedPasswordField
from m3saas.identifiers import validate_database_name, validate_user_name
from m3saas.servers import DEFAULT_SERVER
from m3saas.tenancy.info import DEFAULT_BACKUP_LIMITS

_MODULE_NAME_RE = re.compile(r"^[a-z][a-z0-9_]*$")


def validate_rate_limit(value: str) -> None:
    try:
        rate_limit_parse(value)
    except ValueError:
        raise ValidationError(f"Give {RATE_LIMIT_HELP}.") from None


def validate_module_list(value: str) -> None:
    for name in (part.strip() for part in value.split(",")):
        if name and not _MODULE_NAME_RE.match(name):
            raise ValidationError(f"{name!r} is not a module name.")


def validate_server_name(value: str) -> None:
    if not SERVER_NAME_RE.match(value):
        raise ValidationError(f"{value!r} is not a server name: a-z first, then a-z, 0-9, _ or -; at most 32.")


class DatabaseServer(models.Model):
    """A database server tenant databases are placed on; its account's password is in the config only.

    Rows are made from the config file (`tenants.services.servers_sync`: the default server and
    each of `tenants.servers`), which also keeps `host`, `port` and `user` in step with it;
    `capacity` and `state` are the operator's once the row exists. A row whose name the config
    does not declare cannot be used (no password) and is reported so.
    """

    class State(models.TextChoices):
        OPEN = "open", "open: takes new tenants"
        DRAINING = "draining", "draining: keeps its tenants, takes no new ones"
        CLOSED = "closed", "closed: takes no new tenants"

    name = models.CharField(
        max_length=32,
        unique=True,
        validators=[validate_server_name],
        help_text=f"As in the config's tenants.servers; '{DEFAULT_SERVER}' is the server of tenants.database.",
    )
    host = models.CharField(max_length=255, blank=True, default="", help_text="From the config file.")
    port = models.PositiveIntegerField(default=0, help_text="From the config file.")
    user = models.CharField(
        max_length=80, blank=True, default="", help_text="The account that creates databases and users there (config)."
    )
    capacity = models.IntegerField(default=0, help_text="How many tenants it may hold; below 1 means unlimited.")
    state = models.CharField(max_length=16, choices=State.choices, default=State.OPEN)

    class Meta:
        ordering = ["name"]
        verbose_name = "database server"

    def __str__(self) -> str:
        return self.name

    @property
    def unlimited(self) -> bool:
        return self.capacity < 1


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
    password = EncryptedPasswordField(
        help_text="Stored encrypted (tenantPasswordKeys); salted and hashed with dbSalt into the database "
        "user's password.",
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
    migration_fingerprint = models.CharField(
        max_length=64,
        blank=True,
        default="",
        editable=False,
        help_text="Hash of the migrations the last successful run left applied; blank: unknown (opened next run).",
    )
    rate_limit = models.CharField(
        max_length=32,
        blank=True,
        default="",
        validators=[validate_rate_limit],
        help_text="Requests per period for this tenant, e.g. 600/min, or off; blank: TENANT_RATE_LIMIT.",
    )
    server = models.ForeignKey(
        DatabaseServer,
        to_field="name",
        db_column="server",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="tenants",
        help_text=f"The database server of its database; blank on a new tenant: placed by capacity. "
        f"Blank on an existing one: '{DEFAULT_SERVER}'.",
    )

    moving = models.BooleanField(
        default=False,
        editable=False,
        help_text="A move to another server is under way (manage.py move_tenant): writes answer 503 meanwhile.",
    )

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"{self.name} (#{self.id})"

    def save(self, *args: Any, **kwargs: Any) -> None:
        """A new tenant is placed (`tenants.servers.server_place`: its named server, checked, else by
        capacity) whichever way it is made (service, seed file, admin, shell): never on a full,
        closed or unconfigured server. Raises `ApplicationError` subclasses, nothing saved."""
        if self._state.adding:
            from tenants.servers import server_place

            self.server = server_place(name=self.server_id)
        super().save(*args, **kwargs)

    def clean(self) -> None:
        validate_not_master(name=self.name, user=self.user)

    @property
    def server_name(self) -> str:
        """The name of its server (`DEFAULT_SERVER` when the column is blank), without a query."""
        return self.server_id or DEFAULT_SERVER


class TenantMigrationRun(models.Model):
    """One attempt to bring a tenant's database up to date, kept in the master database.

    A run left `running` by a process that died counts as failed; the next run of its tenant
    closes it as failed, "Interrupted: …" (`tenants.services`).
    """

    class Status(models.TextChoices):
        RUNNING = "running", "running"
        OK = "ok", "ok"
        FAILED = "failed", "failed"
        NOT_RUN = "not_run", "not run"  # the run was stopped (SIGTERM, Ctrl-C) before this tenant's turn

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


class TenantMove(models.Model):
    """One move of a tenant's database to another server (`tenants.moves`), kept in the master.

    `step` is the last step begun. A move left `running` by a process that died is found by the
    next write to the tenant or by a rerun, which hold the tenant's lock the move held: the former
    closes it `interrupted` and gives the tenant its writes back on its source, the latter
    completes it.
    """

    class Step(models.TextChoices):
        FREEZE = "freeze", "freeze: writes refused on the source"
        COPY = "copy", "copy to the target"
        VERIFY = "verify", "verify the copy"
        SWITCH = "switch", "switch: the tenant is served from the target"
        RETIRE = "retire", "retire the source"

    class Status(models.TextChoices):
        RUNNING = "running", "running"
        DONE = "done", "done"
        FAILED = "failed", "failed: the tenant stays on its source"
        INTERRUPTED = "interrupted", "interrupted: its process died before the switch"

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="moves")
    source = models.CharField(max_length=32, help_text="The server the tenant was moved from.")
    target = models.CharField(max_length=32, help_text="The server the tenant was moved to.")
    step = models.CharField(max_length=16, choices=Step.choices, default=Step.FREEZE)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.RUNNING)
    created_target = models.BooleanField(
        default=False, help_text="This move created the target database: a failure drops it again."
    )
    verified = models.JSONField(
        default=dict, blank=True, help_text="Per table of both copies: rows and checksum, as compared."
    )
    started_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)
    source_dropped_at = models.DateTimeField(
        null=True, blank=True, help_text="When --drop-source dropped the source database (after a backup)."
    )
    error = models.TextField(blank=True, default="")

    class Meta:
        ordering = ["-started_at", "-id"]
        indexes = [models.Index(fields=["tenant", "-started_at"], name="tenant_move_latest")]

    def __str__(self) -> str:
        return f"{self.tenant_id}: {self.source} → {self.target} {self.status} ({self.step})"


def _api_key_id() -> str:
    return key_generate()[0]


class ApiKey(models.Model):
    """A tenant's API key: only its SHA-256 is kept; the key itself is shown once when made.

    `last_used_at` is written at most once a minute per key (see `m3saas.access.key_mark_used`).
    """

    id = models.CharField(primary_key=True, max_length=KEY_ID_LENGTH, default=_api_key_id, editable=False)
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="api_keys")
    name = models.CharField(max_length=100, blank=True, default="")
    digest = models.CharField(max_length=64, editable=False)
    modules = models.CharField(
        max_length=255,
        blank=True,
        default="",
        validators=[validate_module_list],
        help_text="Comma-separated module names this key may call; blank: every module of the tenant.",
    )
    read_only = models.BooleanField(default=False, help_text="Only GET, HEAD and OPTIONS.")
    rate_limit = models.CharField(
        max_length=32,
        blank=True,
        default="",
        validators=[validate_rate_limit],
        help_text="This key's own limit on top of the tenant's, e.g. 60/min; blank: the tenant's only.",
    )
    expires_at = models.DateTimeField(null=True, blank=True, help_text="Blank: never expires.")
    revoked_at = models.DateTimeField(null=True, blank=True, editable=False)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["tenant_id", "created_at", "id"]
        verbose_name = "API key"

    def __str__(self) -> str:
        return f"{KEY_PREFIX}_{self.id}_… ({self.name or 'unnamed'})"

    @property
    def module_list(self) -> tuple[str, ...]:
        return tuple(m for m in (part.strip() for part in self.modules.split(",")) if m)

    def status(self, *, now: datetime | None = None) -> str:
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None and self.expires_at <= (now or timezone.now()):
            return "expired"
        return "active"
