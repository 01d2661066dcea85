"""The admin's status page, its branding and the tenant list's cost, as an operator sees them."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any, cast

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from m3saas.engines import engine
from m3saas.traffic import traffic_flush, traffic_list
from tenants.backup_files import backup_path_new
from tenants.models import Tenant, TenantMigrationRun
from tenants.tests.factories import TenantFactory

pytestmark = pytest.mark.django_db


def tenant_row(**fields: Any) -> Tenant:
    return cast(Tenant, TenantFactory(**fields))


STATUS_URL = "/admin/tenants/tenant/status/"


@pytest.fixture
def operator(client):
    client.force_login(User.objects.create_superuser("operator", "op@example.com", "pw-operator-123"))
    return client


def section(page: str, element_id: str) -> str:
    """The HTML of the status page's `<div class="module" id=…>`."""
    match = re.search(rf'<div class="module" id="{element_id}">(.*?)</div>', page, re.S)
    assert match is not None, element_id
    return match.group(1)


def test_status_page_shows_a_failed_tenant_with_its_error(operator):
    tenant = tenant_row(schema_state=Tenant.SchemaState.FAILED)
    TenantMigrationRun.objects.create(
        tenant=tenant, status=TenantMigrationRun.Status.FAILED, error="old error", finished_at=timezone.now()
    )
    TenantMigrationRun.objects.create(
        tenant=tenant, status=TenantMigrationRun.Status.FAILED, error="Table 'x' already exists <b>"
    )
    tenant_row(schema_state=Tenant.SchemaState.READY)

    response = operator.get(STATUS_URL)

    assert response.status_code == 200
    page = response.content.decode()
    failed = section(page, "failed")
    assert tenant.name in failed
    assert "Table &#x27;x&#x27; already exists &lt;b&gt;" in failed  # the newest error, escaped
    assert "old error" not in failed
    by_state = section(page, "by-state")
    assert re.search(r">failed</a></th><td>1</td>", by_state)
    assert re.search(r">ready</a></th><td>1</td>", by_state)


def test_status_page_lists_a_tenant_whose_newest_backup_is_older_than_the_schedule(operator, settings, tmp_path):
    settings.BACKUP_DIR = tmp_path / "backups"
    settings.BACKUP_REPEAT = "day"
    settings.BACKUP_INTERVAL = 1
    extension = engine().backup_extension
    late, recent = tenant_row(schema_state="ready"), tenant_row(schema_state="ready")
    now = timezone.localtime().replace(tzinfo=None, microsecond=0)
    for tenant, age in [(late, 3), (late, 2), (recent, 4), (recent, 0)]:
        path, _ = backup_path_new(database=tenant.name, at=now - timedelta(days=age), extension=extension)
        path.write_bytes(b"not read by the status page")
    never = tenant_row(schema_state="ready")

    page = operator.get(STATUS_URL).content.decode()

    late_backups = section(page, "late-backups")
    assert late.name in late_backups
    assert never.name in late_backups and "never backed up" in late_backups
    assert recent.name not in late_backups


def test_status_page_charts_the_requests_and_errors_counted_per_tenant(operator, make_tenant, tenant_client, settings):
    settings.AUTO_MIGRATION = False
    busy = make_tenant()
    broken = make_tenant(provision=False)  # pending, not migrated: its requests are 503s
    quiet = make_tenant(provision=False)
    client = tenant_client(busy)
    for _ in range(3):
        assert client.get(f"/{busy.id}/test/v1/animals").status_code == 200
    assert tenant_client(broken).get(f"/{broken.id}/test/v1/animals").status_code == 503
    assert client.get("/999999/test/v1/animals").status_code in {401, 404}  # no tenant: no counter

    traffic = section(operator.get(STATUS_URL).content.decode(), "traffic")

    rows = {
        name: (int(requests), int(errors))
        for name, requests, errors in re.findall(
            r'>(\w+) \(#\d+\)</a></td>\s*<td class="requests">(\d+)</td><td class="errors">(\d+)</td>', traffic
        )
    }
    assert rows == {busy.name: (3, 0), broken.name: (1, 1), quiet.name: (0, 0)}
    assert traffic.count("<svg") == 3
    assert 'class="req"' in traffic and "3 requests, 0 errors" in traffic


def test_request_counts_reach_the_shared_cache_in_batches(operator, make_tenant, tenant_client, settings):
    settings.TRAFFIC_FLUSH_SECONDS = 3600
    tenant = make_tenant()
    client = tenant_client(tenant)
    traffic_flush()  # the first count of a process may flush at once
    for _ in range(2):
        assert client.get(f"/{tenant.id}/test/v1/animals").status_code == 200

    assert traffic_list(tenant_ids=[tenant.id])[0].total_requests == 0  # still in this process
    traffic = section(operator.get(STATUS_URL).content.decode(), "traffic")  # flushes this process's
    assert re.search(r'<td class="requests">2</td><td class="errors">0</td>', traffic)
    assert traffic_list(tenant_ids=[tenant.id])[0].total_requests == 2


def test_status_page_shows_the_configured_database_server(operator):
    tenant_row(schema_state="ready")
    servers = section(operator.get(STATUS_URL).content.decode(), "servers")
    assert "<td>1</td>" in servers
    assert ("files under" in servers) or (":" in servers)


def test_status_page_refuses_a_user_who_is_not_staff(client):
    client.force_login(User.objects.create_user("customer", "c@example.com", "pw-customer-123"))
    response = client.get(STATUS_URL)
    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")


def test_status_page_refuses_staff_who_may_not_view_tenants(client):
    client.force_login(User.objects.create_user("helpdesk", "h@example.com", "pw-helpdesk-123", is_staff=True))
    response = client.get(STATUS_URL)
    assert response.status_code == 403
    assert "Failed migrations" not in response.content.decode()


def test_status_page_refuses_an_anonymous_visitor(client):
    response = client.get(STATUS_URL)
    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")


def test_admin_index_links_the_status_page_and_carries_the_brand(operator):
    page = operator.get("/admin/").content.decode()
    assert f'href="{STATUS_URL}"' in page
    assert "M3SaaS operator admin" in page
    assert "<title>Tenants, modules and subscriptions | M3SaaS admin</title>" in page
    assert 'href="/schema/"' in page  # "View site": the API docs


def test_tenant_list_shows_subscription_counts_and_state_in_a_constant_number_of_queries(operator):
    def list_queries() -> tuple[int, str]:
        with CaptureQueriesContext(connection) as queries:
            response = operator.get("/admin/tenants/tenant/")
        assert response.status_code == 200
        return len(queries), response.content.decode()

    TenantFactory.create_batch(2, modules=[("test", 1)])
    with_two, _ = list_queries()
    TenantFactory.create_batch(8, modules=[("test", 1)])
    failed = tenant_row(modules=[("test", 1)])
    Tenant.objects.filter(pk=failed.pk).update(schema_state=Tenant.SchemaState.FAILED)
    with_eleven, page = list_queries()

    assert with_eleven == with_two
    assert re.findall(r'<td class="field-subscription_count">(\d+)</td>', page) == ["1"] * 11
    assert '<strong style="color: #c62828">failed</strong>' in page


def test_tenant_list_filtered_by_module_still_counts_each_subscription_once(operator):
    from subscriptions.models import Module

    tenant = tenant_row(modules=[("test", 1)])
    other = tenant_row(modules=[("test", 1)])
    module = Module.objects.get(name="test")
    page = operator.get("/admin/tenants/tenant/", {"subscriptions__module__id__exact": module.pk}).content.decode()
    assert tenant.name in page and other.name in page
    assert re.findall(r'<td class="field-subscription_count">(\d+)</td>', page) == ["1", "1"]
