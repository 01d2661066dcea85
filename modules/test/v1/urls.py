from __future__ import annotations

from django.urls import path

from modules.test.v1 import views

urlpatterns = [
    path("status", views.StatusView.as_view(), name="status"),
    path("animals", views.AnimalListView.as_view(), name="animal-list"),
    path("animals/<int:pk>", views.AnimalDetailView.as_view(), name="animal-detail"),
]
