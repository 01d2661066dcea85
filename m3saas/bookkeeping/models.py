"""Seed records and job runs, kept beside the data they describe (master or tenant database)."""

from __future__ import annotations

from django.db import models
from django.utils import timezone


class SeedRecord(models.Model):
    """A row that a seed file inserted, so forcing and deseeding never touch a user's row."""

    class Kind(models.TextChoices):
        MAIN = "main", "main"
        TEMPORARY = "temporary", "temporary"

    model = models.CharField(max_length=100, help_text="app_label.model_name of the seeded row")
    object_pk = models.CharField(max_length=64)
    kind = models.CharField(max_length=16, choices=Kind.choices)
    source = models.CharField(max_length=255, blank=True, default="", help_text="seed file")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["model", "object_pk"], name="unique_seed_record")]

    def __str__(self) -> str:
        return f"{self.kind} seed {self.model}#{self.object_pk}"


class JobRun(models.Model):
    """The last run of one scheduled job (`module` label, or `""` for platform jobs)."""

    class Status(models.TextChoices):
        OK = "ok", "ok"
        FAILED = "failed", "failed"

    module = models.CharField(max_length=100, blank=True, default="")
    job = models.CharField(max_length=100)
    last_run_at = models.DateTimeField(null=True, blank=True)
    last_status = models.CharField(max_length=16, choices=Status.choices, blank=True, default="")
    last_error = models.TextField(blank=True, default="")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["module", "job"], name="unique_job_run")]

    def __str__(self) -> str:
        return f"{self.module or 'platform'}:{self.job}"


class IdempotencyKey(models.Model):
    """A client's `Idempotency-Key` and the response it got (see `m3saas.idempotency`).

    Written in the same transaction as the request's own writes, in the tenant's database, so a
    retry after a crash that followed the commit finds it. Only the key's digest is kept: exact
    (a case-insensitive collation would merge `A` and `a`) and of fixed length.
    """

    digest = models.CharField(max_length=64, unique=True, help_text="sha256 of the key, hex")
    fingerprint = models.CharField(max_length=64, help_text="sha256 of the request (m3saas.idempotency)")
    token = models.CharField(max_length=32, help_text="the claim of the request running it")
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    completed = models.BooleanField(default=False)
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    headers = models.JSONField(default=dict, blank=True)
    body = models.BinaryField(default=b"", blank=True)

    def __str__(self) -> str:
        return f"idempotency key {self.digest[:12]}… ({'done' if self.completed else 'running'})"
