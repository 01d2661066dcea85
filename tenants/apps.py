from __future__ import annotations

from typing import Any

from django.apps import AppConfig


class TenantsConfig(AppConfig):
    name = "tenants"
    verbose_name = "Tenants"

    def ready(self) -> None:
        from django.db.models.signals import post_migrate

        from tenants import signals  # noqa: F401  (connects cache invalidation)

        post_migrate.connect(_servers_sync, sender=self, dispatch_uid="tenants_servers_sync")


def _servers_sync(using: str = "default", **kwargs: Any) -> None:
    """After the master is migrated: a row per configured database server (see `tenants.servers`)."""
    from django.db import DEFAULT_DB_ALIAS

    if using == DEFAULT_DB_ALIAS:
        from tenants.servers import servers_sync

        servers_sync()
