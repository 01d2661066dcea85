"""The one row that names this installation (master database only)."""

from __future__ import annotations

import uuid

from django.db import models


class Installation(models.Model):
    """This installation's identity, written into the owner mark of every tenant database it creates."""

    SINGLETON = 1

    id = models.PositiveSmallIntegerField(primary_key=True, default=SINGLETON)
    uuid = models.UUIDField(unique=True, default=uuid.uuid4, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return str(self.uuid)
