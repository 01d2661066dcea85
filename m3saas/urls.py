"""Root URLs, all under the config's `sub_directory`."""

from __future__ import annotations

from django.contrib import admin
from django.urls import include, path

from m3saas.conf import get_config
from m3saas.modules.urls import module_urlpatterns

handler404 = "m3saas.api.not_found_view"
handler500 = "m3saas.api.server_error_view"

platform_patterns = [
    path("admin/", admin.site.urls),
    path("", include("tenants.urls")),
    *module_urlpatterns(),
]

_prefix = f"{get_config().sub_directory}/" if get_config().sub_directory else ""
urlpatterns = [path(_prefix, include(platform_patterns))]
