from __future__ import annotations

from django.urls import path

from modules.notes.v1 import views

urlpatterns = [
    path("notes", views.NoteListView.as_view(), name="note-list"),
]
