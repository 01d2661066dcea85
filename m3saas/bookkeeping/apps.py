from __future__ import annotations

from django.apps import AppConfig


class BookkeepingConfig(AppConfig):
    name = "m3saas.bookkeeping"
    label = "bookkeeping"
    verbose_name = "Platform bookkeeping (in every database)"
