from __future__ import annotations

from django.db import models


class Note(models.Model):
    # Another module's model: see modules/tags/v1/models.py.
    tag = models.ForeignKey("tags_v1.Tag", on_delete=models.DO_NOTHING, db_constraint=False, related_name="+")
    text = models.TextField()

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return self.text[:40]
