"""Test data for master rows of the subscriptions app."""

from __future__ import annotations

import factory
from factory.django import DjangoModelFactory

from subscriptions.models import Module, Subscription


class ModuleFactory(DjangoModelFactory):
    """A module row; `name` defaults to the example module `test` (reused if present)."""

    class Meta:
        model = Module
        django_get_or_create = ("name",)

    name = "test"


class SubscriptionFactory(DjangoModelFactory):
    """A subscription: `SubscriptionFactory(tenant=row, module__name="tags", version=1)`."""

    class Meta:
        model = Subscription

    tenant = factory.SubFactory("tenants.tests.factories.TenantFactory")
    module = factory.SubFactory(ModuleFactory)
    version = 1
