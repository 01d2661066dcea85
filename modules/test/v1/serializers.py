from __future__ import annotations

from rest_framework import serializers

from m3saas.serializers import StrictCharField
from modules.test.v1.models import Animal


class AnimalOutputSerializer(serializers.ModelSerializer):
    class Meta:
        model = Animal
        fields = ["id", "name"]


class AnimalInputSerializer(serializers.Serializer):
    name = StrictCharField(max_length=255)
