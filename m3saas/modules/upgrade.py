"""A module version's data step (`modules/<name>/v<N>/upgrade.py`) and a helper to write one.

The step is `def upgrade(*, alias: str, from_version: int) -> None`; `tenants.upgrade` runs it
inside the tenant's context and `transaction.atomic(using=alias)` when a tenant moves to the
new major version.
"""

from __future__ import annotations

import importlib
import importlib.util
from typing import Protocol

from django.apps import apps

from m3saas.exceptions import ApplicationError
from m3saas.modules.registry import module_version_get

UPGRADE_FUNCTION = "upgrade"


class UpgradeError(ApplicationError):
    code = "upgrade_refused"
    default_message = "The subscription cannot be moved to that version."


class DataStep(Protocol):
    def __call__(self, *, alias: str, from_version: int) -> None: ...


def upgrade_step_get(module: str, major: int) -> DataStep | None:
    """The data step of `modules/<module>/v<major>/upgrade.py`, or None when it has none."""
    if module_version_get(module, major) is None:
        return None
    dotted = f"modules.{module}.v{major}.upgrade"
    if importlib.util.find_spec(dotted) is None:
        return None
    step = getattr(importlib.import_module(dotted), UPGRADE_FUNCTION, None)
    if not callable(step):
        raise UpgradeError(f"{dotted} has no function {UPGRADE_FUNCTION}(*, alias, from_version).")
    return step


def module_rows_copy(*, alias: str, from_label: str, to_label: str, batch_size: int = 500) -> dict[str, int]:
    """Copy the rows of every model of app `from_label` into the same-named model of `to_label`.

    Only fields both models have are copied; primary keys are kept, and rows whose key is
    already in the new table are skipped. Models are copied in their definition order, so
    declare referenced models first. Returns rows copied per model name. A starting point
    for a data step; write your own when the new version changes the shape.
    """
    copied: dict[str, int] = {}
    source = apps.get_app_config(from_label)
    for new in apps.get_app_config(to_label).get_models():
        if not new._meta.managed or new._meta.proxy:
            continue
        model_name = new._meta.object_name or ""
        try:
            old = source.get_model(model_name)
        except LookupError:
            continue
        if not old._meta.managed or old._meta.proxy:
            continue
        old_fields = {f.attname for f in old._meta.concrete_fields}
        common = [f.attname for f in new._meta.concrete_fields if f.attname in old_fields]
        pk = new._meta.pk.attname
        existing = set(new._default_manager.using(alias).values_list(pk, flat=True))
        rows = [
            new(**row)
            for row in old._default_manager.using(alias).order_by(old._meta.pk.attname).values(*common).iterator()
            if row.get(pk) not in existing
        ]
        new._default_manager.using(alias).bulk_create(rows, batch_size=batch_size)
        copied[model_name] = len(rows)
    return copied
