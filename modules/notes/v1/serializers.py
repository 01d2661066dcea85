from __future__ import annotations

from rest_framework import serializers

from modules.notes.v1.models import Note


class NoteSerializer(serializers.ModelSerializer):
    class Meta:
        model = Note
        fields = ["id", "tag", "text"]
