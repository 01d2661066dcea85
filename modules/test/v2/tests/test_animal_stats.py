"""`test` v2's read-only animal stats, served from a database view, called as a client would."""

from __future__ import annotations

from collections import Counter

import pytest
from rest_framework.test import APIClient

from modules.test.v2.models import Animal

pytestmark = [pytest.mark.django_db, pytest.mark.module_apis_public]


@pytest.fixture
def tenant(make_tenant):
    return make_tenant(modules=[("test", 2)])


@pytest.fixture
def client() -> APIClient:
    return APIClient()


def stats_url(tenant) -> str:
    return f"/{tenant.id}/test/v2/animal-stats"


def expected_stats(tenant) -> list[dict[str, object]]:
    """What the view must say, computed from the rows themselves (seeds included)."""
    names = Animal.objects.using(tenant.alias).values_list("name", flat=True)
    counts = Counter(name[0].upper() for name in names)
    return [{"letter": letter, "animals": counts[letter]} for letter in sorted(counts)]


def test_stats_count_animals_by_first_letter(tenant, client):
    for name in ["Ant", "ape", "Bee", "cat", "Cow", "crow"]:
        assert client.post(f"/{tenant.id}/test/v2/animals", {"name": name}, format="json").status_code == 201
    response = client.get(stats_url(tenant))
    assert response.status_code == 200
    assert response.json() == expected_stats(tenant)
    by_letter = {row["letter"]: row["animals"] for row in response.json()}
    assert by_letter["A"] >= 2 and by_letter["B"] >= 1 and by_letter["C"] >= 3


def test_stats_follow_inserts_and_deletes(tenant, client):
    before = {row["letter"]: row["animals"] for row in client.get(stats_url(tenant)).json()}
    zebra = client.post(f"/{tenant.id}/test/v2/animals", {"name": "zebra"}, format="json").json()
    client.post(f"/{tenant.id}/test/v2/animals", {"name": "Zorilla"}, format="json")
    after = {row["letter"]: row["animals"] for row in client.get(stats_url(tenant)).json()}
    assert after["Z"] == before.get("Z", 0) + 2
    assert client.delete(f"/{tenant.id}/test/v2/animals/{zebra['id']}").status_code == 204
    last = {row["letter"]: row["animals"] for row in client.get(stats_url(tenant)).json()}
    assert last["Z"] == before.get("Z", 0) + 1


@pytest.mark.parametrize("method", ["post", "put", "patch", "delete"])
def test_writes_to_stats_are_405_json(tenant, client, method):
    client.post(f"/{tenant.id}/test/v2/animals", {"name": "yak"}, format="json")
    before = client.get(stats_url(tenant)).json()
    response = getattr(client, method)(stats_url(tenant), {"letter": "Y", "animals": 99}, format="json")
    assert response.status_code == 405
    assert response.json()["error"]["code"] == "method_not_allowed"
    assert client.get(stats_url(tenant)).json() == before


def test_stats_are_404_for_a_tenant_on_v1(make_tenant, client):
    v1 = make_tenant(modules=[("test", 1)])
    response = client.get(stats_url(v1))
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_animals_api_keeps_working_with_species(tenant, client):
    response = client.post(f"/{tenant.id}/test/v2/animals", {"name": "owl", "species": "bird"}, format="json")
    assert response.status_code == 201
    assert response.json()["species"] == "bird"
    names = [a["name"] for a in client.get(f"/{tenant.id}/test/v2/animals").json()]
    assert "owl" in names
