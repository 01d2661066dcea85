"""Operator routes of the platform (mounted under the config's `sub_directory`)."""

from __future__ import annotations

from django.urls import re_path

from m3saas.tenancy.paths import TENANT_ID_PATTERN
from tenants.api import MasterMigrateView, TenantMigrateView

urlpatterns = [
    re_path(r"^migrate(?:/(?P<action>[a-z]+))?/?$", MasterMigrateView.as_view(), name="migrate"),
    re_path(
        rf"^(?P<tenant_id>{TENANT_ID_PATTERN})/migrate(?:/(?P<action>[a-z]+))?/?$",
        TenantMigrateView.as_view(),
        name="tenant-migrate",
    ),
]
