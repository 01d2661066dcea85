"""Routes of the operator API (mounted at `operator/v1/`), and its schema under `schema/operator/v1/`."""

from __future__ import annotations

from django.conf import settings
from django.urls import URLPattern, URLResolver, include, path

from tenants.operator_api import views

urlpatterns = [
    path("tenants", views.TenantListView.as_view(), name="operator-tenants"),
    path("tenants/<int:tenant_id>", views.TenantDetailView.as_view(), name="operator-tenant"),
    path("tenants/<int:tenant_id>/subscriptions", views.SubscriptionListView.as_view(), name="operator-subscriptions"),
    path(
        "tenants/<int:tenant_id>/subscriptions/<slug:module>",
        views.SubscriptionDetailView.as_view(),
        name="operator-subscription",
    ),
    path("tenants/<int:tenant_id>/runs", views.RunListView.as_view(), name="operator-runs"),
    path("tenants/<int:tenant_id>/backups", views.BackupListView.as_view(), name="operator-backups"),
    path("tenants/<int:tenant_id>/keys", views.ApiKeyListView.as_view(), name="operator-keys"),
    path("tenants/<int:tenant_id>/keys/<slug:key_id>", views.ApiKeyDetailView.as_view(), name="operator-key"),
    path("jobs", views.JobListView.as_view(), name="operator-jobs"),
    path("jobs/<slug:job_id>", views.JobDetailView.as_view(), name="operator-job"),
    path("audit", views.AuditListView.as_view(), name="operator-audit"),
]

DESCRIPTION = (
    "For operators: staff users only, with `Authorization: Token <key>` (a staff user's DRF token) or, "
    "for POST, an admin session with its CSRF token. Every write is recorded in the audit log "
    '(`GET /operator/v1/audit`). Errors share one shape: `{"error": {"code", "message"}}`.'
)


def operator_schema_urlpatterns() -> list[URLPattern | URLResolver]:
    from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView

    prefix = settings.M3SAAS_CONFIG.sub_directory
    mounted = path(f"{prefix}/operator/v1/" if prefix else "operator/v1/", include(urlpatterns))
    schema = SpectacularAPIView.as_view(
        patterns=[mounted],
        custom_settings={
            "TITLE": "M3SaaS operator API",
            "DESCRIPTION": DESCRIPTION,
            "VERSION": "1",
            "SCHEMA_PATH_PREFIX": r"^/(?:[^/]+/)?operator/v1",
        },
    )
    return [
        path("schema/operator/v1/", schema, name="schema-operator"),
        path(
            "schema/operator/v1/docs/",
            SpectacularSwaggerView.as_view(url_name="schema-operator"),
            name="schema-operator-docs",
        ),
        path(
            "schema/operator/v1/redoc/",
            SpectacularRedocView.as_view(url_name="schema-operator"),
            name="schema-operator-redoc",
        ),
    ]
