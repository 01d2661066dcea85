from __future__ import annotations

from django.db import models


class Tag(models.Model):
    # Another module's model: DO_NOTHING and no database constraint, or deleting an animal in a
    # tenant without this module would look for its tags in a table that is not there.
    animal = models.ForeignKey("test_v1.Animal", on_delete=models.DO_NOTHING, db_constraint=False, related_name="+")
    label = models.CharField(max_length=64)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return self.label
