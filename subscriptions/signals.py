"""Invalidation only: a change to modules, dependencies or subscriptions drops cached master reads.

The tenants app listens to the same changes to mark the affected tenants' schemas pending
(`tenants.signals`).
"""

from __future__ import annotations

from typing import Any

from django.db.models.signals import post_delete, post_save

from m3saas.tenancy.cache import master_cache_invalidate
from subscriptions.models import Module, ModuleDependency, Subscription


def _changed(**kwargs: Any) -> None:
    master_cache_invalidate()


for _model in (Module, ModuleDependency, Subscription):
    post_save.connect(_changed, sender=_model, dispatch_uid=f"cache_invalidate_save_{_model.__name__}")
    post_delete.connect(_changed, sender=_model, dispatch_uid=f"cache_invalidate_delete_{_model.__name__}")
