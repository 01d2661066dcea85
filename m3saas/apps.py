from __future__ import annotations

from django.apps import AppConfig


class M3SaaSConfig(AppConfig):
    name = "m3saas"
    verbose_name = "M3SaaS platform"

    def ready(self) -> None:
        from m3saas.modules import checks  # noqa: F401  (registers the module checks)
