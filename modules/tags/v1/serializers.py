from __future__ import annotations

from rest_framework import serializers

from modules.tags.v1.models import Tag


class TagSerializer(serializers.ModelSerializer):
    class Meta:
        model = Tag
        fields = ["id", "animal", "label"]
