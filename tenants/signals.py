"""Invalidation only: master changes drop the cached tenant reads, and new database credentials
mark the tenant's database pending (its user's password must be set again before use)."""

from __future__ import annotations

from typing import Any

from django.db.models.signals import post_delete, post_save, pre_save
from django.dispatch import receiver

from m3saas.tenancy.cache import master_cache_invalidate
from tenants.models import Tenant


@receiver(pre_save, sender=Tenant, dispatch_uid="tenants_credentials_before")
def tenant_credentials_before(instance: Tenant, **kwargs: Any) -> None:
    instance._credentials_before = (  # type: ignore[attr-defined]
        Tenant.objects.filter(pk=instance.pk).values_list("user", "password").first() if instance.pk else None
    )


@receiver([post_save, post_delete], sender=Tenant, dispatch_uid="tenants_cache_invalidate")
def tenant_changed(instance: Tenant, created: bool = False, **kwargs: Any) -> None:
    before = getattr(instance, "_credentials_before", None)
    if before is not None and before != (instance.user, instance.password):
        from tenants.services import tenants_schema_mark_pending

        tenants_schema_mark_pending(tenant_ids=[instance.pk])
    master_cache_invalidate()
