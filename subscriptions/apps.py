from __future__ import annotations

from django.apps import AppConfig


class SubscriptionsConfig(AppConfig):
    name = "subscriptions"
    verbose_name = "Modules and subscriptions"

    def ready(self) -> None:
        from subscriptions import checks, signals  # noqa: F401  (registers the checks, connects cache invalidation)
