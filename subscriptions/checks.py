"""`manage.py check` on master data: subscriptions and dependencies naming module versions
that are not installed, dependency cycles, tenants that would need two majors of a module."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Error, register
from django.db import DatabaseError

from m3saas.modules.registry import module_versions
from subscriptions.models import ModuleDependency, Subscription
from subscriptions.selectors import (
    dependency_cycles,
    dependency_graph,
    module_conflicts,
    subscriptions_by_tenant,
    tenant_names,
)


@register("m3saas")
def check_subscriptions_have_code(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
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
    names = tenant_names(tenant_ids=list(conflicts)) if conflicts else {}
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
