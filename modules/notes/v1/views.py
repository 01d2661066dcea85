"""Notes on tags: list and create (the tag comes from the `tags` v1 dependency)."""

from __future__ import annotations

from rest_framework.generics import ListCreateAPIView

from modules.notes.v1.models import Note
from modules.notes.v1.serializers import NoteSerializer


class NoteListView(ListCreateAPIView):
    queryset = Note.objects.all()
    serializer_class = NoteSerializer
