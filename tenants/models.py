from __future__ import annotations

from django.db import models

from m3saas.identifiers import validate_database_name, validate_user_name


class Tenant(models.Model):
    """A customer: its own database (`name`), database user (`user`) and backup limits."""

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
    per_day_backups = models.IntegerField(default=1, help_text="Backups kept per day; below 1 means unlimited.")
    max_backups = models.IntegerField(default=10, help_text="Backups kept overall; below 1 means unlimited.")

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"{self.name} (#{self.id})"
