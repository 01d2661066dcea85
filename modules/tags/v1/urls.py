from __future__ import annotations

from django.urls import path

from modules.tags.v1 import views

urlpatterns = [
    path("tags", views.TagListView.as_view(), name="tag-list"),
]
