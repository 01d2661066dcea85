from __future__ import annotations

from rest_framework import serializers

from modules.test.v1.models import Animal


class AnimalOutputSerializer(serializers.ModelSerializer):
    class Meta:
        model = Animal
        fields = ["id", "name"]


class AnimalInputSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=255, allow_blank=False, trim_whitespace=True)
