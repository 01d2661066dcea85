from __future__ import annotations

from m3saas.serializers import ModuleModelSerializer
from modules.notes.v1.models import Note


class NoteSerializer(ModuleModelSerializer):
    class Meta:
        model = Note
        fields = ["id", "tag", "text"]
