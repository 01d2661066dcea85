"""Tenant connections are registered lazily and never pile up in a worker."""

from __future__ import annotations

import pytest
from django.db import connections
from rest_framework.test import APIClient

from m3saas.passwords import password_encrypt
from m3saas.tenancy.connections import TENANT_MARK, is_tenant_alias, tenant_connection_unregister

pytestmark = [pytest.mark.django_db, pytest.mark.module_apis_public]


def open_tenant_connections() -> int:
    return sum(
        1
        for c in connections.all(initialized_only=True)
        if c.connection is not None and c.settings_dict.get(TENANT_MARK)
    )


def test_a_worker_keeps_at_most_the_configured_tenant_connections(make_tenant, settings):
    settings.TENANT_MAX_OPEN_CONNECTIONS = 2
    tenants = [make_tenant() for _ in range(5)]
    for c in connections.all(initialized_only=True):
        if c.settings_dict.get(TENANT_MARK):
            c.close()
    client = APIClient()
    for tenant in tenants:
        assert client.get(f"/{tenant.id}/test/v1/animals").status_code == 200
        assert open_tenant_connections() <= 2


def test_first_request_registers_the_tenant_alias(make_tenant):
    tenant = make_tenant()
    tenant_connection_unregister(tenant.alias)
    assert not is_tenant_alias(tenant.alias)
    assert APIClient().get(f"/{tenant.id}/test/v1/animals").status_code == 200
    assert is_tenant_alias(tenant.alias)
    assert connections.settings[tenant.alias]["ATOMIC_REQUESTS"] is False


def test_new_credentials_reach_threads_that_already_hold_a_connection(make_tenant):
    """Re-registering an alias (new password) in one thread replaces the others' stale wrappers."""
    import dataclasses
    import threading

    from m3saas.tenancy.connections import tenant_connection_register

    tenant = make_tenant()
    first_use, re_registered = threading.Event(), threading.Event()
    seen: list[bool] = []

    def worker() -> None:
        try:
            connections[tenant.alias].ensure_connection()
            first_use.set()
            re_registered.wait(timeout=30)
            seen.append(connections[tenant.alias].settings_dict is connections.settings[tenant.alias])
        finally:
            connections.close_all()

    thread = threading.Thread(target=worker)
    thread.start()
    first_use.wait(timeout=30)
    tenant_connection_register(dataclasses.replace(tenant, password=password_encrypt("rotated")))
    re_registered.set()
    thread.join(timeout=30)
    assert seen == [True]


def test_a_new_tenant_password_is_applied_before_the_next_request(make_tenant, settings):
    """The database user's password follows the tenant's; the tenant is served throughout."""
    from tenants.models import Tenant

    settings.AUTO_MIGRATION = True
    tenant = make_tenant()
    client = APIClient()
    assert client.get(f"/{tenant.id}/test/v1/animals").status_code == 200
    row = Tenant.objects.get(pk=tenant.id)
    row.password = "rotated-password"
    row.save(update_fields=["password"])
    assert Tenant.objects.get(pk=tenant.id).schema_state == "pending"
    assert client.get(f"/{tenant.id}/test/v1/animals").status_code == 200
    assert Tenant.objects.get(pk=tenant.id).schema_state == "ready"
