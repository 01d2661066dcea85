"""The browsable API for operators, JSON for everyone else; the `/schema/` index in a browser.

A staff user logged into the admin may read (never write) a tenant's module API without a key and
sees DRF's browsable API; with `DEBUG` anyone may see it (with a key). Every other caller gets JSON.
"""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.test import Client

from m3saas.modules.registry import module_versions
from modules.test.v1.models import Animal

pytestmark = pytest.mark.django_db

BROWSER = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"


def _session(*, staff: bool, active: bool = True) -> Client:
    user = User.objects.create_user(
        f"user-{User.objects.count()}", password="pw-browser-123", is_staff=staff, is_active=active
    )
    client = Client()
    client.force_login(user)
    return client


def _animals(tenant) -> str:
    return f"/{tenant.id}/test/v1/animals"


def test_a_staff_session_browses_a_tenants_module_api_without_a_key(make_tenant):
    tenant = make_tenant()
    Animal.objects.using(tenant.alias).create(name="okapi")
    response = _session(staff=True).get(_animals(tenant), HTTP_ACCEPT=BROWSER)
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/html")
    html = response.content.decode()
    assert "okapi" in html and "Django REST framework" in html
    # Read-only: no form to create an animal is offered (DRF names its raw body field `_content`).
    assert "_content" not in html


def test_a_staff_session_gets_json_when_it_asks_for_json(make_tenant):
    tenant = make_tenant()
    Animal.objects.using(tenant.alias).create(name="okapi")
    response = _session(staff=True).get(_animals(tenant), HTTP_ACCEPT="application/json")
    assert response.status_code == 200
    assert [animal["name"] for animal in response.json()] == ["okapi"]


@pytest.mark.parametrize("method", ["post", "put", "patch", "delete"])
def test_a_staff_session_may_not_write_without_a_key(make_tenant, method):
    tenant = make_tenant()
    animal = Animal.objects.using(tenant.alias).create(name="okapi")
    url = _animals(tenant) if method == "post" else f"{_animals(tenant)}/{animal.pk}"
    response = getattr(_session(staff=True), method)(url, {"name": "zebra"}, content_type="application/json")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "not_authenticated"
    assert list(Animal.objects.using(tenant.alias).values_list("name", flat=True)) == ["okapi"]


@pytest.mark.parametrize(("staff", "active"), [(False, True), (True, False)], ids=["not-staff", "inactive-staff"])
def test_a_non_staff_or_inactive_session_gets_nothing_without_a_key(make_tenant, staff, active):
    tenant = make_tenant()
    Animal.objects.using(tenant.alias).create(name="okapi")
    client = _session(staff=staff, active=active)
    response = client.get(_animals(tenant), HTTP_ACCEPT=BROWSER)
    assert response.status_code == 401
    assert response["Content-Type"] == "application/json"
    assert "okapi" not in response.content.decode()


def test_a_browser_with_a_key_but_no_staff_session_gets_json(make_tenant, tenant_key):
    tenant = make_tenant()
    Animal.objects.using(tenant.alias).create(name="okapi")
    client = _session(staff=False)
    response = client.get(_animals(tenant), HTTP_ACCEPT=BROWSER, HTTP_AUTHORIZATION=f"Bearer {tenant_key(tenant)}")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    assert response.json()[0]["name"] == "okapi"


def test_the_browsable_format_is_not_found_for_a_non_staff_caller(make_tenant, tenant_key):
    tenant = make_tenant()
    response = Client().get(_animals(tenant), {"format": "api"}, HTTP_AUTHORIZATION=f"Bearer {tenant_key(tenant)}")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_with_debug_a_browser_with_a_key_gets_the_browsable_api(make_tenant, tenant_key, settings):
    settings.DEBUG = True
    tenant = make_tenant()
    Animal.objects.using(tenant.alias).create(name="okapi")
    response = Client().get(_animals(tenant), HTTP_ACCEPT=BROWSER, HTTP_AUTHORIZATION=f"Bearer {tenant_key(tenant)}")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/html")
    html = response.content.decode()
    # A key may write, so its forms are offered.
    assert "okapi" in html and "_content" in html


def test_the_example_module_keeps_its_plain_list_without_pages(make_tenant, tenant_client):
    tenant = make_tenant()
    Animal.objects.using(tenant.alias).bulk_create(Animal(name=f"animal {n}") for n in range(150))
    body = tenant_client(tenant).get(_animals(tenant)).json()
    assert isinstance(body, list) and len(body) == 150


# The /schema/ index -----------------------------------------------------------------------------


def test_the_schema_index_is_an_html_page_in_a_browser():
    response = Client().get("/schema/", HTTP_ACCEPT=BROWSER)
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/html")
    assert "Accept" in response["Vary"]
    html = response.content.decode()
    for name, major in module_versions():
        assert f'href="/schema/{name}/v{major}/"' in html
        assert f'href="/schema/{name}/v{major}/docs/"' in html
        assert f'href="/schema/{name}/v{major}/redoc/"' in html


@pytest.mark.parametrize("accept", [None, "*/*", "application/json", "application/json, text/html;q=0.5"])
def test_the_schema_index_is_json_for_clients(accept):
    headers = {"HTTP_ACCEPT": accept} if accept else {}
    response = Client().get("/schema/", **headers)
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    assert {(m["module"], m["version"]) for m in response.json()["modules"]} == set(module_versions())


def test_the_schema_index_gives_json_to_a_browser_asking_for_it():
    response = Client().get("/schema/", {"format": "json"}, HTTP_ACCEPT=BROWSER)
    assert response["Content-Type"] == "application/json"
    assert response.json()["modules"]
