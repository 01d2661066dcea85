"""Tags on animals: list and create (the animal comes from the `test` v1 dependency)."""

from __future__ import annotations

from rest_framework.generics import ListCreateAPIView

from modules.tags.v1.models import Tag
from modules.tags.v1.serializers import TagSerializer


class TagListView(ListCreateAPIView):
    queryset = Tag.objects.all()
    serializer_class = TagSerializer
