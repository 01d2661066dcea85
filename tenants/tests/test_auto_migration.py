"""AUTO_MIGRATION: registering a tenant or changing its subscriptions prepares its database; a
request to a pending tenant does it once, never on every request."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from django.utils import timezone
from rest_framework.test import APIClient

from m3saas.engines import engine
from modules.test.v1.models import Animal
from subscriptions.models import Module, ModuleDependency, Subscription
from tenants.models import Tenant, TenantMigrationRun
from tenants.selectors import tenant_info_get
from tenants.services import tenant_create, tenant_subscribe
from tenants.tests.helpers import break_tenant, tables

pytestmark = [pytest.mark.django_db, pytest.mark.module_apis_public]

State = Tenant.SchemaState


@pytest.fixture
def auto(settings):
    settings.AUTO_MIGRATION = True


def state(tenant_id: int) -> str:
    return Tenant.objects.get(pk=tenant_id).schema_state


def names(alias: str) -> list[str]:
    return sorted(Animal.objects.using(alias).values_list("name", flat=True))


def test_a_new_tenant_is_pending(make_tenant):
    tenant = make_tenant(provision=False)
    assert state(tenant.id) == State.PENDING


def test_first_request_to_a_pending_tenant_prepares_its_database(auto, make_tenant):
    tenant = make_tenant(provision=False)
    response = APIClient().get(f"/{tenant.id}/test/v1/animals")
    assert response.status_code == 200
    assert [a["name"] for a in response.json()] == ["cat", "dog", "owl"]
    assert state(tenant.id) == State.READY
    run = TenantMigrationRun.objects.get(tenant_id=tenant.id)
    assert (run.trigger, run.status, run.seeded) == ("request", "ok", True)


def test_later_requests_do_not_migrate_again(auto, make_tenant):
    tenant = make_tenant(provision=False)
    client = APIClient()
    for _ in range(3):
        assert client.get(f"/{tenant.id}/test/v1/animals").status_code == 200
    assert TenantMigrationRun.objects.filter(tenant_id=tenant.id).count() == 1


def test_a_ready_tenants_request_makes_no_master_query(auto, make_tenant):
    from django.db import connections
    from django.test.utils import CaptureQueriesContext

    tenant = make_tenant()
    client = APIClient()
    client.get(f"/{tenant.id}/test/v1/animals")  # warm the cache
    with CaptureQueriesContext(connections["default"]) as master:
        assert client.get(f"/{tenant.id}/test/v1/animals").status_code == 200
    assert len(master) == 0


def test_without_auto_migration_a_request_migrates_nothing(settings, make_tenant):
    settings.AUTO_MIGRATION = False
    tenant = make_tenant(provision=False)
    APIClient().get(f"/{tenant.id}/test/v1/nothing-here")
    assert not TenantMigrationRun.objects.exists()
    assert state(tenant.id) == State.PENDING


def test_a_tenant_being_prepared_by_another_request_is_503(auto, make_tenant):
    tenant = make_tenant(provision=False)
    Tenant.objects.filter(pk=tenant.id).update(schema_state=State.MIGRATING, schema_state_at=timezone.now())
    response = APIClient().get(f"/{tenant.id}/test/v1/animals")
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "tenant_migrating"
    assert not TenantMigrationRun.objects.exists()


def test_a_claim_left_by_a_dead_process_is_taken_over(auto, make_tenant):
    tenant = make_tenant(provision=False)
    long_ago = timezone.now() - timedelta(hours=2)
    Tenant.objects.filter(pk=tenant.id).update(schema_state=State.MIGRATING, schema_state_at=long_ago)
    assert APIClient().get(f"/{tenant.id}/test/v1/animals").status_code == 200
    assert state(tenant.id) == State.READY


def test_a_failed_preparation_is_503_recorded_and_not_retried_by_requests(auto, make_tenant):
    tenant = make_tenant(provision=False)
    break_tenant(tenant)
    client = APIClient()
    response = client.get(f"/{tenant.id}/test/v1/animals")
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "tenant_not_ready"
    client.get(f"/{tenant.id}/test/v1/animals")
    [run] = TenantMigrationRun.objects.filter(tenant_id=tenant.id)
    assert run.status == "failed"
    assert state(tenant.id) == State.FAILED


def test_a_subscription_change_makes_the_next_request_migrate_it(auto, make_tenant):
    tenant = make_tenant()
    assert state(tenant.id) == State.READY
    tags = Module.objects.create(name="tags")
    ModuleDependency.objects.create(module=tags, dependency=Module.objects.get(name="test"), version=1)
    Subscription.objects.create(tenant_id=tenant.id, module=tags, version=1)
    assert state(tenant.id) == State.PENDING
    assert APIClient().get(f"/{tenant.id}/tags/v1/tags").status_code == 200
    assert "tags_v1_tag" in tables(tenant.alias)


def test_a_new_dependency_marks_its_users_pending(make_tenant):
    user_of_tags = make_tenant(modules=[("tags", 1)], provision=False)
    other = make_tenant(modules=[("test", 2)])
    ModuleDependency.objects.create(
        module=Module.objects.get(name="tags"), dependency=Module.objects.get(name="test"), version=1
    )
    assert state(user_of_tags.id) == State.PENDING
    assert state(other.id) == State.READY


def test_subscription_create_prepares_the_tenants_database_at_once(auto, make_tenant):
    tenant = make_tenant(modules=[])
    tenant_subscribe(tenant_id=tenant.id, module="test", version=1)
    assert names(tenant.alias) == ["cat", "dog", "owl"]
    assert state(tenant.id) == State.READY
    assert TenantMigrationRun.objects.get(tenant_id=tenant.id).trigger == "code"


def test_tenant_create_prepares_the_database(auto, drop_new_tenants):
    tenant = tenant_create(name="auto_created", user="auto_created", password="pw")
    assert engine().database_exists(tenant_info_get(tenant_id=tenant.id))
    assert state(tenant.id) == State.READY


def test_admin_registration_prepares_migrates_and_seeds(
    auto, client, drop_new_tenants, django_capture_on_commit_callbacks
):
    client.force_login(User.objects.create_superuser("operator", "op@example.com", "pw-operator-123"))
    test = Module.objects.create(name="test")
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            "/admin/tenants/tenant/add/",
            {
                "name": "admin_registered",
                "user": "admin_registered",
                "password": "pw",
                "per_day_backups": 1,
                "max_backups": 10,
                "subscriptions-TOTAL_FORMS": 1,
                "subscriptions-INITIAL_FORMS": 0,
                "subscriptions-0-module": test.id,
                "subscriptions-0-version": 1,
            },
            follow=True,
        )
    assert response.status_code == 200
    row = Tenant.objects.get(name="admin_registered")
    info = tenant_info_get(tenant_id=row.id)
    assert names(info.alias) == ["cat", "dog", "owl"]
    assert info.schema_state == State.READY


def test_admin_subscription_prepares_the_tenants_database(
    auto, client, make_tenant, django_capture_on_commit_callbacks
):
    tenant = make_tenant(modules=[])
    client.force_login(User.objects.create_superuser("operator", "op@example.com", "pw-operator-123"))
    module = Module.objects.create(name="test")
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            "/admin/subscriptions/subscription/add/", {"tenant": tenant.id, "module": module.id, "version": 2}
        )
    assert response.status_code == 302
    assert "test_v2_animal" in tables(tenant.alias)
    assert state(tenant.id) == State.READY


def test_seed_command_prepares_the_tenants_the_seeds_register(auto, tmp_path, settings, drop_new_tenants):
    (tmp_path / "01.json").write_text(
        json.dumps(
            [
                {
                    "model": "tenants.tenant",
                    "main": [{"id": 7701, "name": "seeded_one", "user": "seeded_one", "password": "pw"}],
                },
                {"model": "subscriptions.module", "main": [{"id": 7701, "name": "test"}]},
                {
                    "model": "subscriptions.subscription",
                    "main": [{"id": 7701, "tenant": 7701, "module": 7701, "version": 1}],
                },
            ]
        )
    )
    settings.MASTER_SEEDS_DIR = tmp_path
    call_command("seed")
    info = tenant_info_get(tenant_id=7701)
    assert names(info.alias) == ["cat", "dog", "owl"]
    assert info.schema_state == State.READY


@pytest.mark.django_db(transaction=True)
def test_admin_tells_the_operator_the_database_is_ready(auto, client, drop_new_tenants):
    """Committed for real, so the admin's after-commit step runs inside the request."""
    client.force_login(User.objects.create_superuser("operator", "op@example.com", "pw-operator-123"))
    response = client.post(
        "/admin/tenants/tenant/add/",
        {
            "name": "admin_told",
            "user": "admin_told",
            "password": "pw",
            "per_day_backups": 1,
            "max_backups": 10,
            "subscriptions-TOTAL_FORMS": 0,
            "subscriptions-INITIAL_FORMS": 0,
        },
        follow=True,
    )
    assert "Database of tenant admin_told is ready: 2 migration(s) applied." in response.content.decode()
