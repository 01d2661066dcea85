"""Writes on modules, dependencies and subscriptions, checked before they are saved."""

from __future__ import annotations

from django.db import DEFAULT_DB_ALIAS, transaction

from subscriptions.models import Module, ModuleDependency, Subscription
from subscriptions.selectors import tenant_subscriptions
from subscriptions.validators import dependencies_validate, subscriptions_validate


def module_get_or_create(*, name: str) -> Module:
    module = Module.objects.filter(name=name).first()
    if module is None:
        module = Module(name=name)
        module.full_clean()
        module.save()
    return module


def module_dependency_create(*, module: str, dependency: str, version: int = 1) -> ModuleDependency:
    """`module` needs `dependency` at major `version`; refused (ValidationError) on a cycle, a missing
    module version, or a tenant that would need two majors of one module."""
    with transaction.atomic(using=DEFAULT_DB_ALIAS):
        row = module_get_or_create(name=module)
        others = [
            (name, major)
            for name, major in ModuleDependency.objects.filter(module=row).values_list("dependency__name", "version")
            if name != dependency
        ]
        dependencies_validate(module=module, dependencies=[*others, (dependency, version)])
        return ModuleDependency.objects.create(
            module=row, dependency=module_get_or_create(name=dependency), version=version
        )


def subscription_create(*, tenant_id: int, module: str, version: int = 1) -> Subscription:
    """Subscribe a tenant to `module` at major `version`; refused (ValidationError) when its modules
    would not resolve. The tenant's schema becomes pending (`tenants.services.tenant_subscribe`
    also migrates it with AUTO_MIGRATION)."""
    with transaction.atomic(using=DEFAULT_DB_ALIAS):
        others = [(name, major) for name, major in tenant_subscriptions(tenant_id=tenant_id) if name != module]
        subscriptions_validate(subscriptions=[*others, (module, version)])
        subscription = Subscription(tenant_id=tenant_id, module=module_get_or_create(name=module), version=version)
        subscription.full_clean()
        subscription.save()
    return subscription
