"""Test data for tenant rows (master database only: provisioning is `make_tenant`'s job)."""

from __future__ import annotations

import uuid

import factory
from factory.django import DjangoModelFactory

from tenants.models import Tenant


def _unique_name(_: object) -> str:
    return f"t{uuid.uuid4().hex[:12]}"


class TenantFactory(DjangoModelFactory):
    """A tenant row with a unique safe name, the same database user, and `secret` as password.

    `TenantFactory(modules=[("test", 1)])` also subscribes it to those module versions.
    """

    class Meta:
        model = Tenant
        skip_postgeneration_save = True

    name = factory.LazyAttribute(_unique_name)
    user = factory.LazyAttribute(lambda tenant: tenant.name)
    password = "secret"

    @factory.post_generation
    def modules(self, create: bool, extracted: list[tuple[str, int]] | None, **kwargs: object) -> None:
        from subscriptions.tests.factories import SubscriptionFactory

        for module, version in extracted or ():
            SubscriptionFactory(tenant=self, module__name=module, version=version)
