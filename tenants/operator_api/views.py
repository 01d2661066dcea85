"""Views of the operator API: parse, call one service or selector, record the write, shape the answer."""

from __future__ import annotations

from typing import Any

from django.db.models import Prefetch, QuerySet
from django.http import HttpRequest
from django.http.response import HttpResponseBase
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework.pagination import PageNumberPagination
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.serializers import Serializer

from m3saas.audit.models import AuditEntry
from m3saas.audit.services import Source, audit_record_request
from m3saas.exceptions import NotFoundError, TenantNotFoundError
from m3saas.idempotency import HEADER as IDEMPOTENCY_HEADER
from m3saas.idempotency import REPLAYED_HEADER, idempotency_key_digest, request_fingerprint
from m3saas.identifiers import is_digits
from m3saas.modules.registry import module_version_get
from subscriptions.models import Subscription
from tenants.api import _OperatorView
from tenants.api_keys import api_key_create, api_key_list, api_key_revoke
from tenants.backup_files import backup_list
from tenants.models import ApiKey, OperatorJob, Tenant, TenantMigrationRun
from tenants.operator_api import schema as _schema  # noqa: F401  (its authentication extension)
from tenants.operator_api import serializers as s
from tenants.operator_api.jobs import operator_job_get, operator_job_start
from tenants.operator_api.services import (
    OperatorInputError,
    operator_subscription_add,
    operator_subscription_remove,
    operator_tenant_create,
    operator_tenant_update,
)
from tenants.servers import tenants_on_server

STATES = [choice.value for choice in Tenant.SchemaState]
JOB_STATUSES = [choice.value for choice in OperatorJob.Status]
AUDIT_SOURCES = [choice.value for choice in AuditEntry.Source]
# How long a client should wait between two polls of a job (the `Retry-After` of a 202).
POLL_AFTER_SECONDS = 2
IDEMPOTENCY_PARAMETER = OpenApiParameter(
    IDEMPOTENCY_HEADER,
    str,
    location=OpenApiParameter.HEADER,
    required=False,
    description="A retry with the same key (same operator, same request) gets the first try's job, not a second one.",
)
ACCEPTED = {
    202: OpenApiResponse(
        s.JobOutput,
        description="Accepted: the work runs apart. `Location` is the job's URL: poll it until `done` or `failed`.",
    )
}


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
        return paginator.get_paginated_response(serializer(found, many=True, context={"request": request}).data)

    @staticmethod
    def filtered(request: Request, rows: QuerySet[Any], *, param: str, field: str, choices: list[str]) -> QuerySet[Any]:
        """`rows` narrowed by the query parameter `param`, which must be one of `choices` (else 400)."""
        value = request.query_params.get(param)
        if value is None:
            return rows
        if value not in choices:
            raise OperatorInputError(f"{param}: one of {', '.join(choices)}.")
        return rows.filter(**{field: value})

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        if request.headers.get(IDEMPOTENCY_HEADER) is not None:
            # Kept before anything parses it (DRF, a CSRF check reading a form): the key's
            # request fingerprint covers the raw body.
            request.body  # noqa: B018
        return super().dispatch(request, *args, **kwargs)

    def accept(
        self, request: Request, *, kind: str, tenant: Tenant, params: dict[str, Any], action: str, target: Any
    ) -> Response:
        """Start long work as a job: 202 with the job and its URL in `Location` (the same job for a keyed retry)."""
        raw = request.headers.get(IDEMPOTENCY_HEADER)
        digest = idempotency_key_digest(raw) if raw is not None else None
        job, created = operator_job_start(
            kind=kind,
            tenant=tenant,
            params=params,
            actor=request.user.get_username(),
            idempotency_digest=digest,
            fingerprint=request_fingerprint(request._request) if digest is not None else "",
        )
        if created:
            self.audit(request, action, target, detail={**params, "job": job.pk})
        body = s.JobOutput(operator_job_get(job_id=job.pk), context={"request": request}).data
        response = Response(body, status=202, headers={"Location": body["url"], "Retry-After": str(POLL_AFTER_SECONDS)})
        if not created:
            response[REPLAYED_HEADER] = "true"
        return response

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
        rows = self.filtered(request, _tenants(), param="state", field="schema_state", choices=STATES)
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


class SubscriptionDetailView(OperatorView):
    @extend_schema(request=s.SubscriptionChangeInput, parameters=[IDEMPOTENCY_PARAMETER], responses=ACCEPTED)
    def patch(self, request: Request, tenant_id: int, module: str) -> Response:
        """Move to another major version as `upgrade_subscription` does: 202, then poll the job.

        The job's `result` holds the upgrade's steps; a refused or failed move ends the job
        `failed` with the reason in `error`, the tenant still on its old version.
        """
        data = self.valid(s.SubscriptionChangeInput, request)
        tenant = _tenant(tenant_id)
        subscription = Subscription.objects.filter(tenant=tenant, module__name=module).first()
        if subscription is None:
            raise NotFoundError(f"Tenant {tenant.name} has no subscription to {module!r}.")
        if module_version_get(module, data["version"]) is None:
            raise OperatorInputError(f"version: no module {module!r} at major version {data['version']} is installed.")
        params = {"module": module, "version": data["version"], "drop_old": data["drop_old"]}
        return self.accept(
            request,
            kind=OperatorJob.Kind.UPGRADE,
            tenant=tenant,
            params={**params, "from_version": subscription.version},
            action="subscription.upgrade",
            target=subscription,
        )

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

    @extend_schema(request=None, parameters=[IDEMPOTENCY_PARAMETER], responses=ACCEPTED)
    def post(self, request: Request, tenant_id: int) -> Response:
        """Back the tenant database up now (then prune by its limits, as the daily backup does): 202, then poll.

        The finished job's `result` names the file (`file`, `taken_at`, `size`) and the files pruned.
        """
        tenant = _tenant(tenant_id)
        return self.accept(
            request, kind=OperatorJob.Kind.BACKUP, tenant=tenant, params={}, action="backup.create", target=tenant
        )


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
            OpenApiParameter("source", str, enum=AUDIT_SOURCES),
        ],
        responses=s.AuditEntryOutput(many=True),
    )
    def get(self, request: Request) -> Response:
        """The audit entries, newest first."""
        entries = AuditEntry.objects.order_by("-at", "-id")
        rows = self.filtered(request, entries, param="source", field="source", choices=AUDIT_SOURCES)
        return self.page(request, rows, s.AuditEntryOutput)


class JobListView(OperatorView):
    pagination_class = OperatorPagination

    @extend_schema(
        parameters=[
            OpenApiParameter("status", str, enum=JOB_STATUSES, description="Only jobs in this status."),
            OpenApiParameter("tenant", int, description="Only this tenant's jobs."),
        ],
        responses=s.JobOutput(many=True),
    )
    def get(self, request: Request) -> Response:
        """The jobs, newest first."""
        rows = OperatorJob.objects.order_by("-created_at", "-id")
        rows = self.filtered(request, rows, param="status", field="status", choices=JOB_STATUSES)
        tenant = request.query_params.get("tenant")
        if tenant is not None:
            if not is_digits(tenant) or len(tenant) > 18:
                raise OperatorInputError("tenant: a tenant id.")
            rows = rows.filter(tenant_id=int(tenant))
        return self.page(request, rows, s.JobOutput)


class JobDetailView(OperatorView):
    @extend_schema(responses=s.JobOutput)
    def get(self, request: Request, job_id: str) -> Response:
        """A job's state: `queued`, `running`, then `done` (with its `result`) or `failed` (with its `error`)."""
        job = operator_job_get(job_id=job_id)
        response = Response(s.JobOutput(job, context={"request": request}).data)
        if not job.finished:
            response["Retry-After"] = str(POLL_AFTER_SECONDS)
        return response
