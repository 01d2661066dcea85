"""`/operator/v1/`: staff only; tenants, subscriptions, runs, backups and keys over HTTP, each write audited."""

from __future__ import annotations

import uuid

import pytest
from django.contrib.auth.models import User
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from m3saas.audit.models import AuditEntry
from m3saas.engines import engine
from tenants.models import ApiKey, Tenant
from tenants.selectors import tenant_info_from_row

pytestmark = pytest.mark.django_db


def _client(*, staff: bool) -> APIClient:
    user = User.objects.create_user(f"op_{uuid.uuid4().hex[:8]}", password="pw-operator-123", is_staff=staff)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
    return client


@pytest.fixture
def operator() -> APIClient:
    return _client(staff=True)


def _name() -> str:
    return f"op{uuid.uuid4().hex[:12]}"


def _create(operator: APIClient, **extra: object) -> dict:
    name = _name()
    body = {"name": name, "user": name, "password": "pw-tenant-1", "subscriptions": [{"module": "test", "version": 1}]}
    response = operator.post("/operator/v1/tenants", {**body, **extra}, format="json")
    assert response.status_code == 201, response.content
    return response.json()


def test_a_tenant_made_over_http_serves_its_module_with_a_key_made_over_http(operator, drop_new_tenants):
    tenant = _create(operator)
    assert tenant["state"] == "ready"
    assert tenant["subscriptions"] == [{"module": "test", "version": 1}]
    assert "password" not in tenant
    made = operator.post(f"/operator/v1/tenants/{tenant['id']}/keys", {"name": "sign-up"}, format="json")
    assert made.status_code == 201
    key = made.json()["key"]
    assert key.startswith(f"m3s_{made.json()['id']}_")
    caller = APIClient()
    caller.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    assert caller.get(f"/{tenant['id']}/test/v1/animals").status_code == 200
    assert engine().database_exists(tenant_info_from_row(Tenant.objects.get(pk=tenant["id"])))


def test_the_key_secret_is_shown_once_and_never_listed(operator, make_tenant):
    tenant = make_tenant(provision=False)
    operator.post(f"/operator/v1/tenants/{tenant.id}/keys", {"name": "ci"}, format="json")
    listed = operator.get(f"/operator/v1/tenants/{tenant.id}/keys").json()
    assert [k["name"] for k in listed] == ["ci"]
    assert "key" not in listed[0]


def test_anonymous_is_401_and_nothing_is_created():
    response = APIClient().post("/operator/v1/tenants", {"name": _name(), "user": "x", "password": "p"}, format="json")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "not_authenticated"
    assert APIClient().get("/operator/v1/audit").status_code == 401
    assert not Tenant.objects.exists()


def test_a_non_staff_user_is_403():
    client = _client(staff=False)
    assert client.get("/operator/v1/tenants").status_code == 403
    assert client.post("/operator/v1/tenants", {"name": _name()}, format="json").status_code == 403
    assert not Tenant.objects.exists()


@pytest.mark.parametrize("scheme", ["Bearer", "Api-Key", "Token"])
def test_a_tenant_api_key_never_opens_the_operator_api(make_tenant, tenant_key, scheme):
    tenant = make_tenant(provision=False)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"{scheme} {tenant_key(tenant)}")
    assert client.get("/operator/v1/tenants").status_code == 401
    assert client.get(f"/operator/v1/tenants/{tenant.id}/keys").status_code == 401


def test_an_admin_session_needs_csrf_for_a_write():
    User.objects.create_user("sess_op", password="pw-operator-123", is_staff=True)
    client = APIClient(enforce_csrf_checks=True)
    client.login(username="sess_op", password="pw-operator-123")
    response = client.post("/operator/v1/tenants", {"name": _name(), "user": "u", "password": "p"}, format="json")
    assert response.status_code == 403
    assert not Tenant.objects.exists()


def test_list_is_paginated_and_filtered_by_state_and_module(operator, make_tenant):
    ready = make_tenant(modules=[("test", 1)])
    pending = make_tenant(modules=[], provision=False)
    page = operator.get("/operator/v1/tenants", {"page_size": 1}).json()
    assert page["count"] == 2 and len(page["results"]) == 1 and page["next"]
    by_state = operator.get("/operator/v1/tenants", {"state": "pending"}).json()
    assert [t["id"] for t in by_state["results"]] == [pending.id]
    by_module = operator.get("/operator/v1/tenants", {"module": "test"}).json()
    assert [t["id"] for t in by_module["results"]] == [ready.id]
    assert operator.get("/operator/v1/tenants", {"state": "nonsense"}).status_code == 400
    assert operator.get("/operator/v1/tenants", {"page": 99}).status_code == 404


@pytest.mark.parametrize(
    "body",
    [
        {"name": "bad name; drop", "user": "u", "password": "p"},
        {"name": "ok_name", "user": "u'--", "password": "p"},
        {
            "name": "ok_name2",
            "user": "ok_user2",
            "password": "p",
            "subscriptions": [{"module": "nosuch", "version": 1}],
        },
        {"name": "ok_name3", "user": "ok_user3", "password": "p", "subscriptions": [{"module": "test", "version": 99}]},
        {"name": "ok_name4", "user": "ok_user4", "password": "p", "subscriptions": [{"module": "../x", "version": 1}]},
        {"name": "ok_name5", "user": "ok_user5", "password": "p", "subscriptions": "test"},
        {"name": "ok_name6"},
        ["not", "an", "object"],
    ],
)
def test_hostile_or_invalid_creation_is_400_and_writes_nothing(operator, body):
    response = operator.post("/operator/v1/tenants", body, format="json")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid"
    assert not Tenant.objects.exists()
    assert not AuditEntry.objects.exists()


def test_a_taken_name_is_400(operator, make_tenant):
    tenant = make_tenant(provision=False)
    body = {"name": tenant.name, "user": _name(), "password": "p"}
    response = operator.post("/operator/v1/tenants", body, format="json")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid"


def test_read_update_limits_and_delete_keeps_the_database(operator, make_tenant):
    tenant = make_tenant()
    url = f"/operator/v1/tenants/{tenant.id}"
    assert operator.get(url).json()["name"] == tenant.name
    changed = operator.patch(url, {"max_backups": 3, "rate_limit": "100/min"}, format="json")
    assert changed.status_code == 200
    assert (changed.json()["max_backups"], changed.json()["rate_limit"]) == (3, "100/min")
    assert operator.patch(url, {"rate_limit": "lots"}, format="json").status_code == 400
    assert Tenant.objects.get(pk=tenant.id).rate_limit == "100/min"
    assert operator.delete(url).status_code == 204
    assert operator.get(url).status_code == 404
    assert engine().database_exists(tenant)


def test_unknown_tenant_is_404(operator):
    for url in ("/operator/v1/tenants/999999", "/operator/v1/tenants/999999/keys", "/operator/v1/tenants/999999/runs"):
        response = operator.get(url)
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "tenant_not_found"


def test_subscribe_migrates_and_unsubscribe_keeps_the_tables(operator, make_tenant):
    tenant = make_tenant(modules=[])
    url = f"/operator/v1/tenants/{tenant.id}/subscriptions"
    added = operator.post(url, {"module": "test", "version": 1}, format="json")
    assert added.status_code == 201
    assert added.json()["subscriptions"] == [{"module": "test", "version": 1}]
    assert added.json()["state"] == "ready"
    assert operator.post(url, {"module": "test", "version": 1}, format="json").status_code == 400
    assert operator.post(url, {"module": "nosuch", "version": 1}, format="json").status_code == 400
    assert operator.delete(f"{url}/test").status_code == 204
    assert operator.delete(f"{url}/test").status_code == 404
    assert operator.get(f"/operator/v1/tenants/{tenant.id}").json()["subscriptions"] == []


def test_migration_runs_are_listed_newest_first(operator, drop_new_tenants):
    tenant = _create(operator)
    runs = operator.get(f"/operator/v1/tenants/{tenant['id']}/runs").json()
    assert runs["count"] == 1
    assert runs["results"][0]["status"] == "ok" and runs["results"][0]["trigger"] == "http"


def test_revoke_a_key_over_http(operator, make_tenant, tenant_key):
    tenant = make_tenant()
    made = operator.post(f"/operator/v1/tenants/{tenant.id}/keys", {"name": "old"}, format="json").json()
    revoked = operator.delete(f"/operator/v1/tenants/{tenant.id}/keys/{made['id']}")
    assert revoked.status_code == 200 and revoked.json()["status"] == "revoked"
    caller = APIClient()
    caller.credentials(HTTP_AUTHORIZATION=f"Bearer {made['key']}")
    assert caller.get(f"/{tenant.id}/test/v1/animals").status_code == 401
    assert ApiKey.objects.get(pk=made["id"]).revoked_at is not None


def test_a_key_of_another_tenant_cannot_be_revoked_through_this_one(operator, make_tenant):
    one, other = make_tenant(provision=False), make_tenant(provision=False)
    made = operator.post(f"/operator/v1/tenants/{other.id}/keys", {}, format="json").json()
    assert operator.delete(f"/operator/v1/tenants/{one.id}/keys/{made['id']}").status_code == 404
    assert ApiKey.objects.get(pk=made["id"]).revoked_at is None


def test_an_invalid_key_option_is_400(operator, make_tenant):
    tenant = make_tenant(provision=False)
    response = operator.post(f"/operator/v1/tenants/{tenant.id}/keys", {"rate_limit": "fast"}, format="json")
    assert response.status_code == 400
    assert not ApiKey.objects.exists()


def test_the_operator_schema_and_its_swagger_ui_are_served(operator):
    schema = APIClient().get("/schema/operator/v1/", {"format": "json"})
    assert schema.status_code == 200
    paths = schema.json()["paths"]
    assert "/operator/v1/tenants" in paths and "/operator/v1/tenants/{tenant_id}/keys" in paths
    assert "/operator/v1/audit" in paths
    assert "/operator/v1/jobs/{job_id}" in paths
    upgrade = paths["/operator/v1/tenants/{tenant_id}/subscriptions/{module}"]["patch"]
    assert "202" in upgrade["responses"] and "200" not in upgrade["responses"]
    assert any(p["name"] == "Idempotency-Key" for p in upgrade["parameters"])
    assert "201" in paths["/operator/v1/tenants"]["post"]["responses"]
    assert not any("/test/v1/" in p for p in paths)
    docs = APIClient().get("/schema/operator/v1/docs/")
    assert docs.status_code == 200 and b"swagger" in docs.content.lower()


@pytest.mark.parametrize(
    "url",
    [
        "/operator/v1/tenants/99999999999999999999999999",
        "/operator/v1/tenants/99999999999999999999999999/keys/abcdefgh",
        "/operator/v1/tenants?page=abc",
        "/operator/v1/tenants?page_size=-5&state=",
        "/operator/v1/audit?page=0",
    ],
)
def test_hostile_paths_and_queries_are_client_errors(operator, url):
    responses = [
        operator.get(url),
        operator.patch(url, {"max_backups": "x" * 5000}, format="json"),
        operator.delete(url),
    ]
    assert all(400 <= r.status_code < 500 and "error" in r.json() for r in responses), [
        r.status_code for r in responses
    ]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"expires_at": "2020-01-01T00:00:00Z"}, "expires_at: The expiry must be in the future"),
        ({"modules": "test,nosuch"}, "modules: No installed module 'nosuch'"),
    ],
)
def test_a_key_with_a_past_expiry_or_an_unknown_module_is_refused(operator, make_tenant, body, field):
    tenant = make_tenant(provision=False)
    response = operator.post(f"/operator/v1/tenants/{tenant.id}/keys", body, format="json")
    assert response.status_code == 400
    assert response.json()["error"]["message"].startswith(field)
    assert not ApiKey.objects.exists()
