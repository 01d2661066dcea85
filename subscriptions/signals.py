"""Invalidation only: master changes drop cached reads and mark affected tenants' schemas pending.

Marking a schema pending is the invalidation of "this database is up to date"; the work
itself (provisioning, migrating, seeding) is done by explicit service calls and, with
AUTO_MIGRATION, by the first request to the tenant (see `tenants.services`).
"""

from __future__ import annotations

from typing import Any

from django.db.models.signals import post_delete, post_save

from m3saas.tenancy.cache import master_cache_invalidate
from subscriptions.models import Module, ModuleDependency, Subscription


def _changed(**kwargs: Any) -> None:
    master_cache_invalidate()


def _subscription_saved(instance: Subscription, **kwargs: Any) -> None:
    from tenants.services import tenants_schema_mark_pending

    tenants_schema_mark_pending(tenant_ids=[instance.tenant_id])


def _dependency_saved(instance: ModuleDependency, **kwargs: Any) -> None:
    from subscriptions.selectors import dependency_graph, dependents_of
    from tenants.services import tenants_schema_mark_pending

    modules = dependents_of(instance.module.name, dependency_graph())
    tenant_ids = Subscription.objects.filter(module__name__in=modules).values_list("tenant_id", flat=True)
    tenants_schema_mark_pending(tenant_ids=list(tenant_ids))


for _model in (Module, ModuleDependency, Subscription):
    post_save.connect(_changed, sender=_model, dispatch_uid=f"cache_invalidate_save_{_model.__name__}")
    post_delete.connect(_changed, sender=_model, dispatch_uid=f"cache_invalidate_delete_{_model.__name__}")
post_save.connect(_subscription_saved, sender=Subscription, dispatch_uid="schema_pending_subscription")
post_save.connect(_dependency_saved, sender=ModuleDependency, dispatch_uid="schema_pending_dependency")
