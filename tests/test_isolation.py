"""Two tenants never see each other's rows; module models need a tenant."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from m3saas.exceptions import TenantNotSetError
from m3saas.tenancy.context import tenant_current_or_none, use_tenant
from modules.test.v1.models import Animal

pytestmark = pytest.mark.django_db


def test_tenants_never_see_each_others_rows(make_tenant, tenant_client):
    first, second = make_tenant(), make_tenant()
    first_client, second_client = tenant_client(first), tenant_client(second)
    assert first_client.post(f"/{first.id}/test/v1/animals", {"name": "first-cat"}).status_code == 201
    assert second_client.post(f"/{second.id}/test/v1/animals", {"name": "second-dog"}).status_code == 201
    assert [a["name"] for a in first_client.get(f"/{first.id}/test/v1/animals").json()] == ["first-cat"]
    assert [a["name"] for a in second_client.get(f"/{second.id}/test/v1/animals").json()] == ["second-dog"]
    assert list(Animal.objects.using(first.alias).values_list("name", flat=True)) == ["first-cat"]
    assert list(Animal.objects.using(second.alias).values_list("name", flat=True)) == ["second-dog"]


def test_another_tenants_row_is_404(make_tenant, tenant_client):
    first, second = make_tenant(), make_tenant()
    theirs = Animal.objects.using(second.alias).create(name="theirs")
    mine = Animal.objects.using(first.alias).create(name="mine")
    client = tenant_client(first)
    # Pick an id that exists only in the second tenant's database.
    missing = max(theirs.pk, mine.pk) + 1
    Animal.objects.using(second.alias).create(pk=missing, name="second-only")
    assert client.delete(f"/{first.id}/test/v1/animals/{missing}").status_code == 404
    assert Animal.objects.using(second.alias).filter(pk=missing).exists()


def test_one_tenants_key_opens_nothing_of_another_tenant(make_tenant, tenant_client):
    first, second = make_tenant(), make_tenant()
    row = Animal.objects.using(second.alias).create(name="theirs")
    client = tenant_client(first)
    for response in (
        client.get(f"/{second.id}/test/v1/animals"),
        client.delete(f"/{second.id}/test/v1/animals/{row.pk}"),
        APIClient().get(f"/{second.id}/test/v1/animals"),
    ):
        assert response.status_code == 401
        assert response.json()["error"]["code"] == "not_authenticated"
    assert Animal.objects.using(second.alias).filter(pk=row.pk).exists()


def test_module_model_outside_a_tenant_raises():
    with pytest.raises(TenantNotSetError):
        list(Animal.objects.all())


def test_use_tenant_restores_the_previous_tenant(make_tenant):
    first, second = make_tenant(provision=False), make_tenant(provision=False)
    with use_tenant(first):
        with use_tenant(second):
            assert tenant_current_or_none() == second
        assert tenant_current_or_none() == first
    assert tenant_current_or_none() is None


def test_context_does_not_leak_between_threads(make_tenant):
    import threading

    tenant = make_tenant(provision=False)
    seen = []
    with use_tenant(tenant):
        worker = threading.Thread(target=lambda: seen.append(tenant_current_or_none()))
        worker.start()
        worker.join()
    assert seen == [None]
