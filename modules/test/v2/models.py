from __future__ import annotations

from django.db import models


class Animal(models.Model):
    """v2 breaks v1's shape: every animal has a species."""

    name = models.CharField(max_length=255)
    species = models.CharField(max_length=100, blank=True, default="")

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return self.name
