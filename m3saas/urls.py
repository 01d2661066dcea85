"""Root URLs, all under the config's `sub_directory`."""

from __future__ import annotations

from django.conf import settings
from django.contrib import admin
from django.urls import URLPattern, URLResolver, include, path

from m3saas.audit.admin import audit_every_admin
from m3saas.health import HealthView
from m3saas.modules.urls import ModuleDispatch, module_urlpatterns
from m3saas.openapi import schema_urlpatterns
from tenants.operator_api.urls import operator_schema_urlpatterns

handler400 = "m3saas.api.bad_request_view"
handler403 = "m3saas.api.permission_denied_view"
handler404 = "m3saas.api.not_found_view"
handler500 = "m3saas.api.server_error_view"

# Every admin write lands in the audit log, also for the admins other apps register (users, tokens).
audit_every_admin(admin.site)

platform_patterns = [
    # First: they serve nearly every request, and `<id>/<module>/v<N>/` cannot shadow the rest.
    *module_urlpatterns(),
    path("admin/", admin.site.urls),
    path("health", HealthView.as_view(), name="health"),
    *schema_urlpatterns(),
    *operator_schema_urlpatterns(),
    path("operator/v1/", include("tenants.operator_api.urls")),
    path("", include("tenants.urls")),
]

_prefix = f"{settings.M3SAAS_CONFIG.sub_directory}/" if settings.M3SAAS_CONFIG.sub_directory else ""
admin.site.site_header = settings.ADMIN_SITE_HEADER
admin.site.site_title = settings.ADMIN_SITE_TITLE
admin.site.index_title = "Tenants, modules and subscriptions"
# "View site": the API docs, the closest thing to a site this platform has.
admin.site.site_url = f"/{_prefix}schema/"
# `path(_prefix, include(platform_patterns))` that takes a module path to its mount at once.
urlpatterns: list[URLPattern | URLResolver] = [ModuleDispatch(_prefix, platform_patterns)]
if _prefix:
    # Load balancers and the container's health check ask `/health`, whatever the prefix.
    urlpatterns.insert(0, path("health", HealthView.as_view(), name="health-root"))
