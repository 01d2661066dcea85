"""Cache invalidation only: master changes drop the cached tenant reads."""

from __future__ import annotations

from typing import Any

from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from m3saas.tenancy.cache import master_cache_invalidate
from tenants.models import Tenant


@receiver([post_save, post_delete], sender=Tenant, dispatch_uid="tenants_cache_invalidate")
def tenant_changed(**kwargs: Any) -> None:
    master_cache_invalidate()
