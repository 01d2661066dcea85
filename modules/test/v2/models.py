from __future__ import annotations

from django.db import models

from m3saas.db_views import ViewModel


class Animal(models.Model):
    """v2 breaks v1's shape: every animal has a species."""

    name = models.CharField(max_length=255)
    species = models.CharField(max_length=100, blank=True, default="")

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return self.name


class AnimalStat(ViewModel):
    """How many animals have a name starting with `letter` (upper-cased): the view `test_v2_animal_stats`."""

    letter = models.CharField(max_length=1, primary_key=True)
    animals = models.IntegerField()

    class Meta:
        managed = False
        db_table = "test_v2_animal_stats"
        ordering = ["letter"]

    def __str__(self) -> str:
        return f"{self.letter}: {self.animals}"
