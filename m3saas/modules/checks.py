"""`manage.py check`: malformed module folders, wrong labels, subscriptions without code."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Error, Warning, register
from django.db import DatabaseError

from m3saas.modules.discovery import scan_modules
from m3saas.modules.registry import module_versions


@register("m3saas")
def check_module_folders(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    _, problems = scan_modules(settings.MODULES_DIR)
    messages: list[CheckMessage] = [Warning(f"{p.path}: {p.message}.", hint=p.hint, id="m3saas.W001") for p in problems]
    for module in module_versions().values():
        expected = f"{module.name}_v{module.major}"
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
def check_subscriptions_have_code(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    from subscriptions.models import Subscription

    installed = module_versions()
    try:
        rows = list(Subscription.objects.values_list("tenant__name", "module__name", "version").order_by("tenant_id"))
    except DatabaseError:
        return []  # a fresh master without tables: nothing subscribed yet
    messages: list[CheckMessage] = []
    for tenant, module, version in rows:
        if (module, version) not in installed:
            messages.append(
                Error(
                    f"Tenant '{tenant}' subscribes to module '{module}' v{version}, but "
                    f"{settings.MODULES_DIR / module / f'v{version}'} is not an installed module version.",
                    hint="Add the module version folder (apps.py, urls.py), or change the subscription's "
                    "version in the admin.",
                    id="m3saas.E003",
                )
            )
    return messages


@register("m3saas")
def check_module_dependencies(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """Dependency cycles, dependencies on a module version with no folder, tenants with two majors."""
    from subscriptions.models import ModuleDependency
    from subscriptions.selectors import dependency_cycles, dependency_graph, module_conflicts, subscriptions_by_tenant
    from tenants.models import Tenant

    try:
        graph = dependency_graph()
        rows = list(ModuleDependency.objects.values_list("module__name", "dependency__name", "version"))
        subscriptions = subscriptions_by_tenant()
    except DatabaseError:
        return []  # a fresh master without tables: no dependencies yet
    messages: list[CheckMessage] = [
        Error(
            f"Module dependency cycle: {' → '.join(cycle)}.",
            hint="Delete one of these module dependencies in the admin; a tenant using any of these "
            "modules cannot be resolved until then.",
            id="m3saas.E004",
        )
        for cycle in dependency_cycles(graph)
    ]
    installed = module_versions()
    for module, dependency, version in sorted(rows):
        if (dependency, version) not in installed:
            messages.append(
                Error(
                    f"Module '{module}' depends on module '{dependency}' v{version}, but "
                    f"{settings.MODULES_DIR / dependency / f'v{version}'} is not an installed module version.",
                    hint="Add the module version folder, or change the dependency's version in the admin.",
                    id="m3saas.E005",
                )
            )
    conflicts = module_conflicts(subscriptions, graph)
    names = dict(Tenant.objects.filter(pk__in=list(conflicts)).values_list("pk", "name")) if conflicts else {}
    for tenant_id, error in sorted(conflicts.items()):
        messages.append(
            Error(
                f"Tenant '{names.get(tenant_id, tenant_id)}': {error.message}",
                hint="Change the tenant's subscriptions or the module dependencies so that every module is "
                "needed at one major version.",
                id="m3saas.E006",
            )
        )
    return messages


@register("m3saas")
def check_cross_module_relations(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """A module's foreign key to another app's model must be DO_NOTHING, without a constraint.

    Otherwise deleting the other model's rows makes Django look for dependent rows in a table
    that tenants without this module do not have (and master tables are in another database).
    """
    from django.apps import apps
    from django.db import models

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
