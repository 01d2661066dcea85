from __future__ import annotations

from m3saas.serializers import ModuleModelSerializer
from modules.tags.v1.models import Tag


class TagSerializer(ModuleModelSerializer):
    class Meta:
        model = Tag
        fields = ["id", "animal", "label"]
