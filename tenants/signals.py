"""Invalidation only: master changes drop the cached tenant reads and mark the affected tenants'
databases pending.

Pending means "this database may not be up to date": new credentials (its user's password
must be set again before use), a new or changed subscription, a changed module dependency.
The work itself (provisioning, migrating, seeding) is done by explicit service calls and,
with AUTO_MIGRATION, by the first request to the tenant (see `tenants.services`).
"""

from __future__ import annotations

from typing import Any

from django.db.models.signals import post_delete, post_save, pre_save
from django.dispatch import receiver

from m3saas.passwords import passwords_equal
from m3saas.tenancy.cache import master_cache_invalidate
from subscriptions.models import ModuleDependency, Subscription
from subscriptions.selectors import dependency_graph, dependents_of
from tenants.models import ApiKey, Tenant
from tenants.services import tenants_schema_mark_pending


@receiver(pre_save, sender=Tenant, dispatch_uid="tenants_credentials_before")
def tenant_credentials_before(instance: Tenant, **kwargs: Any) -> None:
    instance._credentials_before = (  # type: ignore[attr-defined]
        Tenant.objects.filter(pk=instance.pk).values_list("user", "password").first() if instance.pk else None
    )


@receiver([post_save, post_delete], sender=Tenant, dispatch_uid="tenants_cache_invalidate")
def tenant_changed(instance: Tenant, created: bool = False, **kwargs: Any) -> None:
    before = getattr(instance, "_credentials_before", None)
    # Tokens differ on every save (and after a key rotation): compare what they hold.
    if before is not None and (before[0] != instance.user or not passwords_equal(before[1], instance.password)):
        tenants_schema_mark_pending(tenant_ids=[instance.pk])
    master_cache_invalidate()


@receiver(post_save, sender=Subscription, dispatch_uid="schema_pending_subscription")
def subscription_saved(instance: Subscription, **kwargs: Any) -> None:
    tenants_schema_mark_pending(tenant_ids=[instance.tenant_id])


@receiver(post_save, sender=ModuleDependency, dispatch_uid="schema_pending_dependency")
def dependency_saved(instance: ModuleDependency, **kwargs: Any) -> None:
    modules = dependents_of(instance.module.name, dependency_graph())
    tenant_ids = Subscription.objects.filter(module__name__in=modules).values_list("tenant_id", flat=True)
    tenants_schema_mark_pending(tenant_ids=list(tenant_ids))


@receiver([post_save, post_delete], sender=ApiKey, dispatch_uid="tenants_api_key_cache_invalidate")
def api_key_changed(**kwargs: Any) -> None:
    """A made, revoked or deleted key takes effect on the next request (cached key records drop)."""
    master_cache_invalidate()
