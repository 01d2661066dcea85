"""Send module models to the current tenant's database and master models to `default`."""

from __future__ import annotations

from typing import Any

from django.db import DEFAULT_DB_ALIAS
from django.db.models import Model

from m3saas.modules.registry import is_module_label
from m3saas.tenancy.connections import is_tenant_alias
from m3saas.tenancy.context import tenant_current, tenant_current_or_none
from m3saas.tenancy.directory import tenant_directory

# Apps whose tables live in every database: the master's and each tenant's.
EVERY_DATABASE_APPS = frozenset({"bookkeeping"})


class TenantRouter:
    """Answers `None` where Django's default is right; never guesses a tenant."""

    def _db_for(self, model: type[Model], **hints: Any) -> str | None:
        if model._meta.app_label in EVERY_DATABASE_APPS:
            tenant = tenant_current_or_none()
            return tenant.alias if tenant is not None else None
        if is_module_label(model._meta.app_label):
            # Raises outside a tenant context: never a silent read of another database.
            return tenant_current().alias
        return None

    db_for_read = _db_for
    db_for_write = _db_for

    def allow_relation(self, obj1: Model, obj2: Model, **hints: Any) -> bool | None:
        if obj1._state.db and obj2._state.db and obj1._state.db != obj2._state.db:
            return False
        if is_module_label(obj1._meta.app_label) != is_module_label(obj2._meta.app_label):
            return False
        return None

    def allow_migrate(self, db: str, app_label: str, model_name: str | None = None, **hints: Any) -> bool | None:
        if app_label in EVERY_DATABASE_APPS:
            return True
        module_app = is_module_label(app_label)
        if db == DEFAULT_DB_ALIAS:
            return False if module_app else None
        if is_tenant_alias(db):
            if not module_app:
                return False
            tenant = tenant_current_or_none()
            if tenant is None or tenant.alias != db:
                tenant = tenant_directory().get_by_alias(db)
            return app_label in tenant.module_labels
        return None
