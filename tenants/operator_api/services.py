"""The operator API's writes, built on the tenants services (the same paths as the admin and the commands)."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.db import DEFAULT_DB_ALIAS, transaction

from m3saas.exceptions import ApplicationError, NotFoundError
from subscriptions.models import Subscription
from subscriptions.services import subscription_create
from tenants.models import Tenant, TenantMigrationRun
from tenants.selectors import tenant_info_fresh
from tenants.services import (
    Seeding,
    tenant_create,
    tenant_migrate,
    tenant_subscribe,
    tenants_schema_mark_pending,
)

HTTP = TenantMigrationRun.Trigger.HTTP


class OperatorInputError(ApplicationError):
    code = "invalid"
    default_message = "The request data is invalid."


class SubscriptionNotFoundError(NotFoundError):
    code = "subscription_not_found"
    default_message = "The tenant has no subscription to this module."


def _invalid(exc: ValidationError) -> OperatorInputError:
    if hasattr(exc, "error_dict"):
        return OperatorInputError("; ".join(f"{k}: {' '.join(v)}" for k, v in exc.message_dict.items()))
    return OperatorInputError(" ".join(exc.messages))


def operator_tenant_create(
    *,
    name: str,
    user: str,
    password: str,
    subscriptions: list[dict[str, Any]],
    server: str | None = None,
    **limits: int,
) -> Tenant:
    """Save the tenant and its subscriptions together (all or nothing), then provision, migrate and seed it.

    A migration that fails leaves the tenant `failed` with its run recorded, as `migrate_tenants` does.
    """
    try:
        with transaction.atomic(using=DEFAULT_DB_ALIAS):
            tenant = tenant_create(
                name=name, user=user, password=password, provision=False, server=server or None, **limits
            )
            for subscription in subscriptions:
                subscription_create(tenant_id=tenant.pk, module=subscription["module"], version=subscription["version"])
    except ValidationError as exc:
        raise _invalid(exc) from None
    tenant_migrate(tenant=tenant_info_fresh(tenant_id=tenant.pk), seed=Seeding.MAIN, trigger=HTTP)
    return Tenant.objects.get(pk=tenant.pk)


def operator_tenant_update(*, tenant: Tenant, changes: dict[str, Any]) -> Tenant:
    """Change a tenant's backup limits or rate limit (checked by the model's validators)."""
    for field, value in changes.items():
        setattr(tenant, field, value)
    try:
        tenant.full_clean(exclude=["password"])
    except ValidationError as exc:
        raise _invalid(exc) from None
    if changes:
        tenant.save(update_fields=list(changes))
    return tenant


def operator_subscription_add(*, tenant: Tenant, module: str, version: int) -> Subscription:
    """Subscribe (`tenant_subscribe`) and bring the tenant's database up to date now, AUTO_MIGRATION or not."""
    if Subscription.objects.filter(tenant=tenant, module__name=module).exists():
        raise OperatorInputError(f"Tenant {tenant.name} already subscribes to {module}: change its version instead.")
    try:
        subscription = tenant_subscribe(tenant_id=tenant.pk, module=module, version=version)
    except ValidationError as exc:
        raise _invalid(exc) from None
    if Tenant.objects.filter(pk=tenant.pk, schema_state=Tenant.SchemaState.PENDING).exists():
        # AUTO_MIGRATION off: `tenant_subscribe` left it pending.
        tenant_migrate(tenant=tenant_info_fresh(tenant_id=tenant.pk), seed=Seeding.MAIN, trigger=HTTP)
    return subscription


def operator_subscription_remove(*, tenant: Tenant, module: str) -> Subscription:
    """Unsubscribe, as the admin does: the module's tables stay in the tenant database."""
    subscription = Subscription.objects.filter(tenant=tenant, module__name=module).select_related("module").first()
    if subscription is None:
        raise SubscriptionNotFoundError(f"Tenant {tenant.name} has no subscription to {module!r}.")
    with transaction.atomic(using=DEFAULT_DB_ALIAS):
        subscription.delete()
        tenants_schema_mark_pending(tenant_ids=[tenant.pk])
    return subscription
