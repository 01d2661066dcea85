from __future__ import annotations

from rest_framework import serializers

from m3saas.serializers import StrictCharField
from modules.test.v2.models import Animal, AnimalStat


class AnimalOutputSerializer(serializers.ModelSerializer):
    class Meta:
        model = Animal
        fields = ["id", "name", "species"]


class AnimalInputSerializer(serializers.Serializer):
    name = StrictCharField(max_length=255)
    species = StrictCharField(max_length=100, required=False, allow_blank=True, default="")


class AnimalStatOutputSerializer(serializers.ModelSerializer):
    class Meta:
        model = AnimalStat
        fields = ["letter", "animals"]
