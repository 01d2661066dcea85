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
