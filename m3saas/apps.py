from __future__ import annotations

from django.apps import AppConfig


class M3SaaSConfig(AppConfig):
    name = "m3saas"
    verbose_name = "M3SaaS platform"

    def ready(self) -> None:
        # Imported here, not at the top: apps.py is loaded before the app registry is ready.
        from m3saas import access  # noqa: F401  (registers the MODULE_API_ACCESS check)
        from m3saas.modules import checks  # noqa: F401  (registers the module checks)
        from m3saas.tenancy.connections import connection_handler_install

        connection_handler_install()
