"""The platform's one seam to the tenant registry: look-ups by id, by alias, and all tenants.

The platform (tenancy, seeding, routing) never imports the app that stores tenants. It asks
the directory named by `settings.M3SAAS_TENANT_DIRECTORY` (a dotted path to a callable that
returns an object with the `TenantDirectory` methods), as django-tenants reaches its tenant
model through a setting. The project points it at `tenants.selectors.TenantDirectory`; the
tenant rows' model is `settings.M3SAAS_TENANT_MODEL` (`tenant_model()`).
"""

from __future__ import annotations

from functools import cache
from typing import Protocol

from django.apps import apps
from django.conf import settings
from django.db.models import Model
from django.utils.module_loading import import_string

from m3saas.tenancy.info import TenantInfo


class TenantDirectory(Protocol):
    def get(self, *, tenant_id: int) -> TenantInfo:
        """The tenant with `tenant_id` (cached); raises `TenantNotFoundError`."""
        ...

    def get_by_alias(self, alias: str) -> TenantInfo:
        """The tenant whose connection alias is `alias` (cached); raises `TenantNotFoundError`."""
        ...

    def all(self) -> list[TenantInfo]:
        """Every tenant, uncached, in id order."""
        ...

    def server_names(self) -> set[str]:
        """The names of the database servers that hold at least one tenant, uncached (one query)."""
        ...


@cache
def _load(path: str) -> TenantDirectory:
    directory: TenantDirectory = import_string(path)()
    return directory


def tenant_directory() -> TenantDirectory:
    """The configured directory (made once per dotted path, so `override_settings` works)."""
    return _load(settings.M3SAAS_TENANT_DIRECTORY)


def tenant_model() -> type[Model]:
    """The model of tenant rows, named by `settings.M3SAAS_TENANT_MODEL` (`tenants.Tenant`)."""
    return apps.get_model(settings.M3SAAS_TENANT_MODEL)
