"""Views of the operator API: parse, call one service or selector, record the write, shape the answer."""

from __future__ import annotations

from typing import Any

from django.db.models import Prefetch, QuerySet
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.pagination import PageNumberPagination
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.serializers import Serializer

from m3saas.audit.models import AuditEntry
from m3saas.audit.services import Source, audit_record_request
from m3saas.exceptions import NotFoundError, TenantNotFoundError
from subscriptions.models import Subscription
from tenants.api import _OperatorView
from tenants.api_keys import api_key_create, api_key_list, api_key_revoke
from tenants.backup_files import backup_list
from tenants.backups import backup_create, backup_target_tenant
from tenants.models import ApiKey, Tenant, TenantMigrationRun
from tenants.operator_api import schema as _schema  # noqa: F401  (its authentication extension)
from tenants.operator_api import serializers as s
from tenants.operator_api.services import (
    OperatorInputError,
    operator_subscription_add,
    operator_subscription_remove,
    operator_tenant_create,
    operator_tenant_update,
)
from tenants.selectors import tenant_info_fresh
from tenants.servers import tenants_on_server
from tenants.upgrade import subscription_upgrade_safe

STATES = [choice.value for choice in Tenant.SchemaState]


class OperatorPagination(PageNumberPagination):
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 500


class OperatorView(_OperatorView):
    """Staff only, as `/migrate`; every write goes to the audit log."""

    def audit(self, request: Request, action: str, target: Any = None, **kwargs: Any) -> None:
        audit_record_request(request, source=Source.API, action=action, target=target, **kwargs)

    def page(self, request: Request, rows: QuerySet[Any], serializer: type[Serializer[Any]]) -> Response:
        paginator = OperatorPagination()  # also named on the view, for the schema
        found = paginator.paginate_queryset(rows, request, view=self)
        return paginator.get_paginated_response(serializer(found, many=True).data)

    @staticmethod
    def valid(serializer: type[Serializer[Any]], request: Request) -> dict[str, Any]:
        form = serializer(data=request.data)
        form.is_valid(raise_exception=True)
        return dict(form.validated_data)


def _tenants() -> QuerySet[Tenant]:
    return Tenant.objects.prefetch_related(
        Prefetch("subscriptions", queryset=Subscription.objects.select_related("module").order_by("module__name"))
    ).order_by("id")


def _tenant(tenant_id: int) -> Tenant:
    row = _tenants().filter(pk=tenant_id).first()
    if row is None:
        raise TenantNotFoundError(f"No tenant {tenant_id}.")
    return row


def _tenant_output(tenant_id: int) -> dict[str, Any]:
    return dict(s.TenantOutput(_tenant(tenant_id)).data)


class TenantListView(OperatorView):
    pagination_class = OperatorPagination

    @extend_schema(
        parameters=[
            OpenApiParameter("state", str, enum=STATES, description="Only tenants in this schema state."),
            OpenApiParameter("module", str, description="Only tenants subscribed to this module."),
            OpenApiParameter("server", str, description="Only tenants whose database is on this server."),
        ],
        responses=s.TenantOutput(many=True),
    )
    def get(self, request: Request) -> Response:
        rows = _tenants()
        state = request.query_params.get("state")
        if state is not None:
            if state not in STATES:
                raise OperatorInputError(f"state: one of {', '.join(STATES)}.")
            rows = rows.filter(schema_state=state)
        module = request.query_params.get("module")
        if module is not None:
            rows = rows.filter(subscriptions__module__name=module)
        server = request.query_params.get("server")
        if server is not None:
            rows = rows.filter(tenants_on_server(server))
        return self.page(request, rows, s.TenantOutput)

    @extend_schema(request=s.TenantCreateInput, responses={201: s.TenantOutput})
    def post(self, request: Request) -> Response:
        data = self.valid(s.TenantCreateInput, request)
        tenant = operator_tenant_create(**data)
        subscriptions = [f"{x['module']} v{x['version']}" for x in data["subscriptions"]]
        self.audit(request, "tenant.create", tenant, detail={"user": tenant.user, "subscriptions": subscriptions})
        return Response(_tenant_output(tenant.pk), status=201)


class TenantDetailView(OperatorView):
    @extend_schema(responses=s.TenantOutput)
    def get(self, request: Request, tenant_id: int) -> Response:
        return Response(_tenant_output(tenant_id))

    @extend_schema(request=s.TenantUpdateInput, responses=s.TenantOutput)
    def patch(self, request: Request, tenant_id: int) -> Response:
        changes = self.valid(s.TenantUpdateInput, request)
        tenant = operator_tenant_update(tenant=_tenant(tenant_id), changes=changes)
        self.audit(request, "tenant.update", tenant, detail=changes)
        return Response(_tenant_output(tenant_id))

    @extend_schema(responses={204: None})
    def delete(self, request: Request, tenant_id: int) -> Response:
        """Delete the tenant's row, its subscriptions and keys; its database and user stay, as in the admin."""
        tenant = _tenant(tenant_id)
        self.audit(request, "tenant.delete", tenant, detail={"user": tenant.user})
        tenant.delete()
        return Response(status=204)


class SubscriptionListView(OperatorView):
    @extend_schema(request=s.SubscriptionInput, responses={201: s.TenantOutput})
    def post(self, request: Request, tenant_id: int) -> Response:
        data = self.valid(s.SubscriptionInput, request)
        tenant = _tenant(tenant_id)
        subscription = operator_subscription_add(tenant=tenant, module=data["module"], version=data["version"])
        self.audit(request, "subscription.create", subscription, detail=data)
        return Response(_tenant_output(tenant_id), status=201)


class UpgradeFailedError(OperatorInputError):
    status_code = 409
    code = "upgrade_failed"


class SubscriptionDetailView(OperatorView):
    @extend_schema(request=s.SubscriptionChangeInput, responses=s.UpgradeOutput)
    def patch(self, request: Request, tenant_id: int, module: str) -> Response:
        """Move to another major version as `upgrade_subscription` does; synchronous (a tenant at a time)."""
        data = self.valid(s.SubscriptionChangeInput, request)
        tenant = _tenant(tenant_id)
        subscription = Subscription.objects.filter(tenant=tenant, module__name=module).first()
        if subscription is None:
            raise NotFoundError(f"Tenant {tenant.name} has no subscription to {module!r}.")
        result = subscription_upgrade_safe(
            tenant=tenant_info_fresh(tenant_id=tenant.pk),
            module=module,
            to_version=data["version"],
            drop_old=data["drop_old"],
        )
        detail = {**data, "from_version": result.from_version, "ok": result.ok}
        self.audit(request, "subscription.upgrade", subscription, detail=detail)
        if not result.ok:
            raise UpgradeFailedError(result.describe())
        return Response(s.UpgradeOutput(result).data)

    @extend_schema(responses={204: None})
    def delete(self, request: Request, tenant_id: int, module: str) -> Response:
        """Unsubscribe; the module's tables stay in the tenant database."""
        subscription = operator_subscription_remove(tenant=_tenant(tenant_id), module=module)
        self.audit(
            request,
            "subscription.delete",
            target_type="subscriptions.subscription",
            target_id=f"{tenant_id}/{module}",
            detail={"version": subscription.version},
        )
        return Response(status=204)


class RunListView(OperatorView):
    pagination_class = OperatorPagination

    @extend_schema(responses=s.RunOutput(many=True))
    def get(self, request: Request, tenant_id: int) -> Response:
        tenant = _tenant(tenant_id)
        return self.page(request, TenantMigrationRun.objects.filter(tenant=tenant), s.RunOutput)


class BackupListView(OperatorView):
    @extend_schema(responses=s.BackupOutput(many=True))
    def get(self, request: Request, tenant_id: int) -> Response:
        """The tenant's backup files, newest first."""
        tenant = _tenant(tenant_id)
        backups = sorted(backup_list(database=tenant.name), key=lambda b: b.sort_key, reverse=True)
        return Response(s.BackupOutput(backups, many=True).data)

    @extend_schema(request=None, responses={201: s.BackupOutput})
    def post(self, request: Request, tenant_id: int) -> Response:
        """Back the tenant database up now (then prune by its limits, as the daily backup does)."""
        tenant = _tenant(tenant_id)
        made = backup_create(target=backup_target_tenant(tenant=tenant_info_fresh(tenant_id=tenant.pk)))
        removed = [b.path.name for b in made.removed]
        self.audit(request, "backup.create", tenant, detail={"file": made.backup.path.name, "removed": removed})
        return Response(s.BackupOutput(made.backup).data, status=201)


class ApiKeyListView(OperatorView):
    @extend_schema(responses=s.ApiKeyOutput(many=True))
    def get(self, request: Request, tenant_id: int) -> Response:
        return Response(s.ApiKeyOutput(api_key_list(tenant=_tenant(tenant_id)), many=True).data)

    @extend_schema(request=s.ApiKeyCreateInput, responses={201: s.ApiKeyCreatedOutput})
    def post(self, request: Request, tenant_id: int) -> Response:
        """Make a key; the response is the only place its secret ever appears."""
        data = self.valid(s.ApiKeyCreateInput, request)
        row, key = api_key_create(tenant=_tenant(tenant_id), **data)
        self.audit(request, "apikey.create", row, detail={"tenant": tenant_id, **data})
        return Response({**s.ApiKeyOutput(row).data, "key": key}, status=201)


class ApiKeyDetailView(OperatorView):
    @extend_schema(responses=s.ApiKeyOutput)
    def delete(self, request: Request, tenant_id: int, key_id: str) -> Response:
        """Revoke the key: refused from the next request on (the row stays, listed as revoked)."""
        tenant = _tenant(tenant_id)
        if not ApiKey.objects.filter(pk=key_id, tenant=tenant).exists():
            raise NotFoundError(f"Tenant {tenant.name} has no API key {key_id!r}.")
        row = api_key_revoke(key_id=key_id)
        self.audit(request, "apikey.revoke", row, detail={"tenant": tenant_id})
        return Response(s.ApiKeyOutput(row).data)


class AuditListView(OperatorView):
    pagination_class = OperatorPagination

    @extend_schema(
        parameters=[
            OpenApiParameter("source", str, enum=[c.value for c in AuditEntry.Source]),
        ],
        responses=s.AuditEntryOutput(many=True),
    )
    def get(self, request: Request) -> Response:
        """The audit entries, newest first."""
        rows = AuditEntry.objects.order_by("-at", "-id")
        source = request.query_params.get("source")
        if source is not None:
            rows = rows.filter(source=source)
        return self.page(request, rows, s.AuditEntryOutput)
