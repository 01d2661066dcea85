"""The operator makes, sees and revokes tenant API keys in the admin; a secret is shown once."""

from __future__ import annotations

import re

import pytest
from django.contrib.auth.models import User
from rest_framework.test import APIClient

from tenants.models import ApiKey, Tenant

pytestmark = pytest.mark.django_db
KEY_RE = re.compile(r"m3s_[a-z0-9]{8}_[A-Za-z0-9]{40}")


@pytest.fixture
def operator(client):
    client.force_login(User.objects.create_superuser("keys-operator", "op@example.com", "pw-operator-123"))
    return client


def _keyed_get(key: str, path: str) -> int:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    return client.get(path).status_code


def test_admin_shows_a_new_key_once_and_never_again(operator, make_tenant):
    tenant = make_tenant()
    form = operator.get(f"/admin/tenants/apikey/add/?tenant={tenant.id}").content.decode()
    assert f'value="{tenant.id}"' in form
    made = operator.post(
        "/admin/tenants/apikey/add/",
        {
            "tenant": tenant.id,
            "name": "shop",
            "modules": "test",
            "rate_limit": "",
            "expires_at_0": "",
            "expires_at_1": "",
        },
    )
    assert made.status_code == 200
    assert "no-store" in made["Cache-Control"] or "no-cache" in made["Cache-Control"]
    shown = KEY_RE.findall(made.content.decode())
    assert len(set(shown)) == 1
    key = shown[0]
    row = ApiKey.objects.get(tenant_id=tenant.id, name="shop")
    assert key.split("_")[1] == row.id and key not in row.digest
    assert _keyed_get(key, f"/{tenant.id}/test/v1/animals") == 200
    for page in (
        f"/admin/tenants/apikey/{row.id}/change/",
        "/admin/tenants/apikey/",
        f"/admin/tenants/tenant/{tenant.id}/change/",
    ):
        html = operator.get(page).content.decode()
        assert row.id in html, page
        assert key not in html and key.split("_")[2] not in html and row.digest not in html, page


def test_admin_revokes_keys(operator, make_tenant, tenant_key):
    tenant = make_tenant()
    key = tenant_key(tenant)
    key_id = key.split("_")[1]
    response = operator.post("/admin/tenants/apikey/", {"action": "revoke", "_selected_action": [key_id]}, follow=True)
    assert response.status_code == 200
    assert ApiKey.objects.get(pk=key_id).revoked_at is not None
    assert _keyed_get(key, f"/{tenant.id}/test/v1/animals") == 401


def test_admin_refuses_a_malformed_key_or_tenant_limit(operator, make_tenant):
    tenant = make_tenant(provision=False)
    refused = operator.post(
        "/admin/tenants/apikey/add/",
        {"tenant": tenant.id, "name": "x", "modules": "not a module", "rate_limit": "lots"},
    )
    assert refused.status_code == 200
    assert "is not a module name" in refused.content.decode()
    assert "600/min" in refused.content.decode()
    assert not ApiKey.objects.filter(tenant_id=tenant.id).exists()


def test_admin_sets_a_tenants_own_rate_limit(operator, make_tenant, tenant_key):
    tenant = make_tenant()
    row = Tenant.objects.get(pk=tenant.id)
    page = operator.get(f"/admin/tenants/tenant/{tenant.id}/change/").content.decode()
    assert 'name="rate_limit"' in page
    data = {
        "password": "",  # write-only: empty keeps the current password
        "per_day_backups": row.per_day_backups,
        "max_backups": row.max_backups,
        "rate_limit": "2/min",
        "subscriptions-TOTAL_FORMS": "0",
        "subscriptions-INITIAL_FORMS": "0",
    }
    response = operator.post(f"/admin/tenants/tenant/{tenant.id}/change/", data)
    assert response.status_code == 302, response.content.decode()[:2000]
    key = tenant_key(tenant)
    assert [_keyed_get(key, f"/{tenant.id}/test/v1/animals") for _ in range(3)] == [200, 200, 429]


@pytest.mark.parametrize("tenant", ["abc", "1'", "9" * 30])
def test_a_hostile_tenant_in_the_add_key_link_is_ignored_not_a_500(operator, tenant):
    response = operator.get(f"/admin/tenants/apikey/add/?tenant={tenant}")
    assert response.status_code == 200


def test_a_tenant_id_past_the_databases_range_is_a_form_error_not_a_500(operator):
    form = {"tenant": "9" * 20, "name": "x", "modules": "", "rate_limit": "", "expires_at_0": "", "expires_at_1": ""}
    response = operator.post("/admin/tenants/apikey/add/", form)
    assert response.status_code == 200
    assert "This field is required" in response.content.decode()


def _add_form(tenant_id: int, **fields: str) -> dict[str, object]:
    return {
        "tenant": tenant_id,
        "name": "k",
        "modules": "",
        "rate_limit": "",
        "expires_at_0": "",
        "expires_at_1": "",
    } | fields


def test_admin_refuses_an_expiry_in_the_past(operator, make_tenant):
    tenant = make_tenant(provision=False)
    page = operator.post(
        "/admin/tenants/apikey/add/", _add_form(tenant.id, expires_at_0="2020-01-01", expires_at_1="00:00:00")
    )
    assert page.status_code == 200
    assert "The expiry must be in the future" in page.content.decode()
    assert not ApiKey.objects.exists() and not KEY_RE.search(page.content.decode())


def test_admin_refuses_an_unknown_module_in_a_key_scope(operator, make_tenant):
    tenant = make_tenant(provision=False)
    page = operator.post("/admin/tenants/apikey/add/", _add_form(tenant.id, modules="test, nosuch"))
    assert page.status_code == 200
    assert "No installed module &#x27;nosuch&#x27;" in page.content.decode()
    assert not ApiKey.objects.exists()


def test_a_key_past_its_expiry_can_still_be_renamed_but_not_given_another_past_expiry(operator, make_tenant):
    from datetime import timedelta

    from django.utils import timezone

    tenant = make_tenant(provision=False)
    past = timezone.now() - timedelta(days=3)
    row = ApiKey.objects.create(tenant_id=tenant.id, digest="x" * 64, expires_at=past)
    local = timezone.localtime(past)
    form = _add_form(tenant.id, name="renamed", expires_at_0=f"{local:%Y-%m-%d}", expires_at_1=f"{local:%H:%M:%S.%f}")
    form.pop("tenant")
    assert operator.post(f"/admin/tenants/apikey/{row.pk}/change/", form).status_code == 302
    assert ApiKey.objects.get(pk=row.pk).name == "renamed"
    moved = operator.post(
        f"/admin/tenants/apikey/{row.pk}/change/", {**form, "expires_at_0": "2021-01-01", "expires_at_1": "00:00:00"}
    )
    assert moved.status_code == 200 and "The expiry must be in the future" in moved.content.decode()
