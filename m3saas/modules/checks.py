"""`manage.py check`: malformed module folders, wrong labels, cross-module foreign keys.

The checks on subscriptions and dependencies (master data) are `subscriptions.checks`.
"""

from __future__ import annotations

from typing import Any

from django.apps import apps
from django.conf import settings
from django.core.checks import CheckMessage, Error, Warning, register
from django.db import models

from m3saas.modules.discovery import scan_modules
from m3saas.modules.registry import module_versions
from m3saas.modules.versions import module_label


@register("m3saas")
def check_module_folders(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    _, problems = scan_modules(settings.MODULES_DIR)
    messages: list[CheckMessage] = [Warning(f"{p.path}: {p.message}.", hint=p.hint, id="m3saas.W001") for p in problems]
    for module in module_versions().values():
        expected = module_label(module.name, module.major)
        if module.label != expected:
            messages.append(
                Error(
                    f"{module.path / 'apps.py'}: the app label is '{module.label}'.",
                    hint=f'Set `label = "{expected}"` in its AppConfig: module labels are <name>_v<N>.',
                    id="m3saas.E002",
                )
            )
    return messages


@register("m3saas")
def check_cross_module_relations(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """A module's foreign key to another app's model must be DO_NOTHING, without a constraint.

    Otherwise deleting the other model's rows makes Django look for dependent rows in a table
    that tenants without this module do not have (and master tables are in another database).
    """

    labels = {m.label for m in module_versions().values()}
    messages: list[CheckMessage] = []
    for label in sorted(labels):
        for model in apps.get_app_config(label).get_models():
            for fk in model._meta.get_fields():
                if not isinstance(fk, models.ForeignKey) or fk.related_model is None:
                    continue
                target = fk.related_model._meta.app_label  # type: ignore[union-attr]
                if target == label:
                    continue
                if fk.remote_field.on_delete is not models.DO_NOTHING or getattr(fk, "db_constraint", True):
                    messages.append(
                        Error(
                            f"{model._meta.label}.{fk.name} points to {fk.related_model._meta.label} "  # type: ignore[union-attr]
                            "in another app.",
                            hint="Use on_delete=models.DO_NOTHING, db_constraint=False and related_name='+': "
                            "tenants without this module have no table for it.",
                            id="m3saas.E007",
                        )
                    )
    return messages
