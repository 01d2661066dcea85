from __future__ import annotations

from django.urls import path

from modules.test.v2 import views

urlpatterns = [
    path("animals", views.AnimalListView.as_view(), name="animal-list"),
    path("animals/<int:pk>", views.AnimalDetailView.as_view(), name="animal-detail"),
    path("animal-stats", views.AnimalStatListView.as_view(), name="animal-stat-list"),
]
