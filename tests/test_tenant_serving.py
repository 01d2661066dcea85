"""A tenant is served only from a database proven its own: ready in the master and marked with
its id and this installation's; otherwise 503 in the JSON error shape, never another's data."""

from __future__ import annotations

import contextlib
import io
import json
from collections.abc import Callable
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from django.core.management import CommandError, call_command
from django.db import connections
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from m3saas.exceptions import ProvisioningError
from m3saas.tenancy.context import use_tenant
from m3saas.tenancy.info import TenantInfo
from modules.test.v1.models import Animal
from subscriptions.models import Module, Subscription
from tenants.models import Tenant
from tenants.services import tenant_create, tenant_subscribe

pytestmark = [pytest.mark.django_db, pytest.mark.module_apis_public]

State = Tenant.SchemaState
SECRET = "old customer's secret"
NOT_SERVED = {"tenant_not_ready", "tenant_unavailable"}


def _by_service(old: TenantInfo, **_: object) -> int:
    tenant = tenant_create(name=old.name, user=old.user, password="new-customer", provision=False)
    with contextlib.suppress(ProvisioningError):  # AUTO_MIGRATION on: refused, the tenant is marked failed
        tenant_subscribe(tenant_id=tenant.id, module="test", version=1)
    return tenant.id


def _by_orm(old: TenantInfo, **_: object) -> int:
    tenant = Tenant.objects.create(name=old.name, user=old.user, password="new-customer")
    Subscription.objects.create(tenant=tenant, module=Module.objects.get_or_create(name="test")[0], version=1)
    return tenant.id


def _by_orm_marked_ready(old: TenantInfo, **_: object) -> int:
    """Whoever writes the row may claim anything: only the database's own mark proves it."""
    tenant_id = _by_orm(old)
    Tenant.objects.filter(pk=tenant_id).update(schema_state=State.READY)
    return tenant_id


def _by_admin(old: TenantInfo, *, client: object, **_: object) -> int:
    user = User.objects.create_superuser("operator", "op@example.com", "pw-operator-123")
    client.force_login(user)  # type: ignore[attr-defined]
    module = Module.objects.get_or_create(name="test")[0]
    response = client.post(  # type: ignore[attr-defined]
        "/admin/tenants/tenant/add/",
        {
            "name": old.name,
            "user": old.user,
            "password": "new-customer",
            "per_day_backups": 1,
            "max_backups": 10,
            "subscriptions-TOTAL_FORMS": 1,
            "subscriptions-INITIAL_FORMS": 0,
            "subscriptions-0-module": module.pk,
            "subscriptions-0-version": 1,
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    return Tenant.objects.get(name=old.name).id


def _by_seed(old: TenantInfo, *, tmp_path: Path, settings: object, **_: object) -> int:
    module = Module.objects.get_or_create(name="test")[0]
    new_id = old.id + 1000
    tenant = {"id": new_id, "name": old.name, "user": old.user, "password": "new-customer"}
    subscription = {"id": new_id, "tenant": new_id, "module": module.pk, "version": 1}
    (tmp_path / "01_tenants.json").write_text(json.dumps({"model": "tenants.tenant", "main": [tenant]}))
    (tmp_path / "02_subs.json").write_text(json.dumps({"model": "subscriptions.subscription", "main": [subscription]}))
    settings.MASTER_SEEDS_DIR = tmp_path  # type: ignore[attr-defined]
    with contextlib.suppress(CommandError):  # AUTO_MIGRATION on: refused, the tenant is marked failed
        call_command("seed", stdout=io.StringIO(), stderr=io.StringIO())
    return new_id


CREATIONS: dict[str, Callable[..., int]] = {
    "service": _by_service,
    "orm": _by_orm,
    "orm_marked_ready": _by_orm_marked_ready,
    "admin": _by_admin,
    "seed": _by_seed,
}


def _deleted_tenants_database(make_tenant: Callable[..., TenantInfo]) -> TenantInfo:
    old = make_tenant()
    with use_tenant(old):
        Animal.objects.create(name=SECRET)
    Tenant.objects.filter(pk=old.id).delete()  # the row goes, the database stays
    return old


@pytest.mark.parametrize("auto_migration", [False, True], ids=["auto_off", "auto_on"])
@pytest.mark.parametrize("how", list(CREATIONS))
def test_a_new_tenant_reusing_a_deleted_tenants_name_never_reaches_its_data(
    make_tenant, settings, client, tmp_path, how, auto_migration
):
    settings.AUTO_MIGRATION = auto_migration
    old = _deleted_tenants_database(make_tenant)
    new_id = CREATIONS[how](old, client=client, tmp_path=tmp_path, settings=settings)

    api = APIClient()
    read = api.get(f"/{new_id}/test/v1/animals")
    write = api.post(f"/{new_id}/test/v1/animals", {"name": "newcomer"}, format="json")

    for response in (read, write):
        assert response.status_code == 503, response.content
        assert response.json()["error"]["code"] in NOT_SERVED
        assert SECRET not in response.content.decode()
    with use_tenant(old):
        assert list(Animal.objects.values_list("name", flat=True)) == [SECRET]


def test_a_row_claiming_ready_without_the_databases_mark_is_unavailable(make_tenant):
    old = _deleted_tenants_database(make_tenant)
    new_id = _by_orm_marked_ready(old)
    response = APIClient().get(f"/{new_id}/test/v1/animals")
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "tenant_unavailable"


def test_a_pending_tenant_answers_503_until_an_operator_migrates_it(make_tenant, settings):
    settings.AUTO_MIGRATION = False
    tenant = make_tenant(provision=False)
    response = APIClient().get(f"/{tenant.id}/test/v1/animals")
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "tenant_not_ready"

    call_command("migrate_tenants", stdout=io.StringIO())

    assert APIClient().get(f"/{tenant.id}/test/v1/animals").status_code == 200


@pytest.mark.parametrize("auto_migration", [False, True], ids=["auto_off", "auto_on"])
def test_a_tenant_whose_migration_failed_answers_503_not_500(make_tenant, settings, auto_migration):
    """A killed or failed migration leaves a table missing and the tenant `failed`."""
    settings.AUTO_MIGRATION = auto_migration
    tenant = make_tenant()
    with connections[tenant.alias].cursor() as cursor:
        cursor.execute("DROP TABLE test_v1_animal")
    Tenant.objects.filter(pk=tenant.id).update(schema_state=State.FAILED)

    response = APIClient().get(f"/{tenant.id}/test/v1/animals")

    assert response.status_code == 503
    assert response.json()["error"]["code"] == "tenant_not_ready"


def test_a_database_marked_by_another_installation_is_not_served(make_tenant):
    tenant = make_tenant()
    with connections[tenant.alias].cursor() as cursor:
        cursor.execute("UPDATE m3saas_owner SET installation = %s", ["another-installation"])
    response = APIClient().get(f"/{tenant.id}/test/v1/animals")
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "tenant_unavailable"


def test_a_ready_tenants_legacy_mark_keeps_it_served(make_tenant):
    """Databases marked before installations had ids keep working."""
    tenant = make_tenant()
    with connections[tenant.alias].cursor() as cursor:
        cursor.execute("DROP TABLE m3saas_owner")
        cursor.execute("CREATE TABLE m3saas_owner (tenant_id BIGINT PRIMARY KEY)")
        cursor.execute("INSERT INTO m3saas_owner (tenant_id) VALUES (%s)", [tenant.id])
    assert APIClient().get(f"/{tenant.id}/test/v1/animals").status_code == 200


def test_the_owner_mark_is_read_once_per_process_not_per_request(make_tenant):
    tenant = make_tenant()
    client = APIClient()
    with CaptureQueriesContext(connections[tenant.alias]) as first:
        assert client.get(f"/{tenant.id}/test/v1/animals").status_code == 200
    with (
        CaptureQueriesContext(connections["default"]) as master,
        CaptureQueriesContext(connections[tenant.alias]) as warm,
    ):
        assert client.get(f"/{tenant.id}/test/v1/animals").status_code == 200
    assert any("m3saas_owner" in q["sql"] for q in first.captured_queries)
    assert not any("m3saas_owner" in q["sql"] for q in warm.captured_queries)
    assert len(master) == 0
