"""Fixtures of the tenants tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from m3saas.tenancy.info import TenantInfo


@pytest.fixture
def drop_new_tenants(db: None) -> Iterator[None]:
    """Drop the databases of every tenant the test registered (outside `make_tenant` too)."""
    yield
    from tenants.models import Tenant
    from tenants.selectors import tenant_info_from_row
    from tenants.services import tenant_database_drop

    for row in Tenant.objects.all():
        try:
            info = tenant_info_from_row(row)
        except Exception:
            info = TenantInfo(id=row.id, name=row.name, user=row.user, password=row.password)
        tenant_database_drop(tenant=info)
