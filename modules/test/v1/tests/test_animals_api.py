"""The animals API of `test` v1, called as a client would, through a tenant."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from m3saas.tenancy.context import use_tenant
from modules.test.v1.models import Animal

pytestmark = [pytest.mark.django_db, pytest.mark.module_apis_public]


@pytest.fixture
def tenant(make_tenant):
    return make_tenant(modules=[("test", 1)])


@pytest.fixture
def client() -> APIClient:
    return APIClient()


def url(tenant, version: str = "1", suffix: str = "animals") -> str:
    return f"/{tenant.id}/test/v{version}/{suffix}"


def test_list_returns_rows_of_the_tenant_database(tenant, client):
    with use_tenant(tenant):
        Animal.objects.create(name="cat")
        Animal.objects.create(name="dog")
    response = client.get(url(tenant))
    assert response.status_code == 200
    assert [a["name"] for a in response.json()] == ["cat", "dog"]
    assert set(response.json()[0]) == {"id", "name"}


@pytest.mark.parametrize("version", ["1", "1.4", "1.0.1"])
def test_sub_versions_are_served_by_v1(tenant, client, version):
    assert client.get(url(tenant, version)).status_code == 200


def test_post_json_creates_an_animal(tenant, client):
    response = client.post(url(tenant), {"name": "owl"}, format="json")
    assert response.status_code == 201
    body = response.json()
    assert body["name"] == "owl"
    assert Animal.objects.using(tenant.alias).filter(pk=body["id"], name="owl").exists()


def test_post_form_creates_an_animal(tenant, client):
    response = client.post(url(tenant), {"name": "fox"})
    assert response.status_code == 201
    assert response.json()["name"] == "fox"


@pytest.mark.parametrize("payload", [{}, {"name": ""}, {"name": "   "}])
def test_post_without_name_is_400_with_field_errors(tenant, client, payload):
    response = client.post(url(tenant), payload, format="json")
    assert response.status_code == 400
    assert list(response.json()["errors"]) == ["name"]
    assert response.json()["errors"]["name"]
    assert not Animal.objects.using(tenant.alias).exists()


def test_delete_removes_the_row(tenant, client):
    animal = Animal.objects.using(tenant.alias).create(name="bee")
    assert client.delete(url(tenant, suffix=f"animals/{animal.pk}")).status_code == 204
    assert not Animal.objects.using(tenant.alias).filter(pk=animal.pk).exists()


def test_delete_of_a_missing_row_is_404(tenant, client):
    response = client.delete(url(tenant, suffix="animals/999"))
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_put_below_1_1_is_404(tenant, client):
    animal = Animal.objects.using(tenant.alias).create(name="ant")
    response = client.put(url(tenant, "1", f"animals/{animal.pk}"), {"name": "emu"}, format="json")
    assert response.status_code == 404
    assert Animal.objects.using(tenant.alias).get(pk=animal.pk).name == "ant"


@pytest.mark.parametrize("version", ["1.1", "1.4", "1.10"])
def test_put_from_1_1_replaces_the_name(tenant, client, version):
    animal = Animal.objects.using(tenant.alias).create(name="ant")
    response = client.put(url(tenant, version, f"animals/{animal.pk}"), {"name": "emu"}, format="json")
    assert response.status_code == 200
    assert response.json() == {"id": animal.pk, "name": "emu"}
    assert Animal.objects.using(tenant.alias).get(pk=animal.pk).name == "emu"


def test_put_of_a_missing_row_is_404(tenant, client):
    assert client.put(url(tenant, "1.1", "animals/999"), {"name": "emu"}, format="json").status_code == 404
