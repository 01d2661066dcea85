"""Module dependencies: a chain is migrated and served; cycles, missing versions and conflicts are
reported by `manage.py check` and refused in the admin and the services."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from rest_framework.test import APIClient

from m3saas.tenancy.migrate import tenant_pending_migrations
from subscriptions.checks import check_module_dependencies
from subscriptions.models import Module, ModuleDependency, Subscription
from subscriptions.services import module_dependency_create
from tenants.services import tenant_subscribe
from tenants.tests.helpers import tables

pytestmark = [pytest.mark.django_db, pytest.mark.module_apis_public]


def depend(module: str, dependency: str, version: int = 1) -> ModuleDependency:
    """Insert a dependency row directly (as a seed or a careless script could), unchecked."""
    return ModuleDependency.objects.create(
        module=Module.objects.get_or_create(name=module)[0],
        dependency=Module.objects.get_or_create(name=dependency)[0],
        version=version,
    )


@pytest.fixture
def chain() -> None:
    """notes v1 → tags v1 → test v1: the example modules."""
    depend("notes", "tags")
    depend("tags", "test")


@pytest.fixture
def operator(client):
    client.force_login(User.objects.create_superuser("operator", "op@example.com", "pw-operator-123"))
    return client


def test_a_three_level_chain_is_migrated_dependencies_first(chain, make_tenant):
    from m3saas.engines import engine

    tenant = make_tenant(modules=[("notes", 1)], provision=False)
    assert tenant.modules == (("test", 1), ("tags", 1), ("notes", 1))
    engine().database_create(tenant)
    assert tenant_pending_migrations(tenant) == [
        "bookkeeping.0001_initial",
        "bookkeeping.0002_idempotencykey",
        "test_v1.0001_initial",
        "tags_v1.0001_initial",
        "notes_v1.0001_initial",
    ]
    from tenants.services import tenant_provision

    tenant_provision(tenant=tenant)
    assert {"test_v1_animal", "tags_v1_tag", "notes_v1_note"} <= tables(tenant.alias)


def test_a_three_level_chain_is_served_to_a_tenant_subscribed_to_the_top(chain, make_tenant):
    tenant = make_tenant(modules=[("notes", 1)])
    api = APIClient()
    animal = api.post(f"/{tenant.id}/test/v1/animals", {"name": "owl"}, format="json").json()
    tag = api.post(f"/{tenant.id}/tags/v1/tags", {"animal": animal["id"], "label": "wise"}, format="json")
    assert tag.status_code == 201
    note = api.post(f"/{tenant.id}/notes/v1/notes", {"tag": tag.json()["id"], "text": "hoots"}, format="json")
    assert note.status_code == 201
    assert api.get(f"/{tenant.id}/notes/v1.2/notes").json() == [{"id": note.json()["id"], "tag": 1, "text": "hoots"}]


def test_without_the_dependency_rows_the_lower_modules_are_not_served(make_tenant):
    tenant = make_tenant(modules=[("tags", 1)], provision=False)
    response = APIClient().get(f"/{tenant.id}/notes/v1/notes")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_a_dependency_migration_needing_an_undeclared_module_is_refused(make_tenant):
    """tags' migration needs test v1; without the dependency row the plan names the missing app."""
    from m3saas.engines import engine
    from m3saas.tenancy.migrate import TenantMigrationError

    tenant = make_tenant(modules=[("tags", 1)], provision=False)
    engine().database_create(tenant)
    with pytest.raises(TenantMigrationError, match="test_v1"):
        tenant_pending_migrations(tenant)


def test_check_reports_a_cycle():
    depend("notes", "tags")
    depend("tags", "notes")
    [message] = [m for m in check_module_dependencies() if m.id == "m3saas.E004"]
    assert message.msg == "Module dependency cycle: notes → tags → notes."


def test_manage_check_fails_on_a_cycle():
    depend("notes", "tags")
    depend("tags", "test")
    depend("test", "notes")
    with pytest.raises(SystemCheckError, match="notes → tags → test → notes"):
        call_command("check")


def test_check_reports_a_dependency_on_a_version_without_folder():
    depend("tags", "test", version=9)
    [message] = check_module_dependencies()
    assert message.id == "m3saas.E005"
    assert "'tags' depends on module 'test' v9" in message.msg


def test_check_reports_a_tenant_with_two_majors_of_one_module(chain, make_tenant):
    tenant = make_tenant(modules=[("notes", 1)], provision=False)
    Subscription.objects.create(tenant_id=tenant.id, module=Module.objects.get(name="test"), version=2)
    [message] = check_module_dependencies()
    assert message.id == "m3saas.E006"
    assert message.msg == (
        f"Tenant '{tenant.name}': Module 'test' is needed at v1 by 'tags' v1 and at v2 by the subscription "
        "to 'test' v2; a tenant can have one major version of a module."
    )


def test_check_passes_with_a_valid_chain(chain, make_tenant):
    make_tenant(modules=[("notes", 1)], provision=False)
    assert check_module_dependencies() == []


def test_service_refuses_a_cycle():
    module_dependency_create(module="notes", dependency="tags")
    with pytest.raises(ValidationError, match="cycle: notes → tags → notes"):
        module_dependency_create(module="tags", dependency="notes")
    assert ModuleDependency.objects.count() == 1


def test_service_refuses_a_subscription_that_conflicts(chain, make_tenant, settings):
    settings.AUTO_MIGRATION = False
    tenant = make_tenant(modules=[("notes", 1)], provision=False)
    with pytest.raises(ValidationError, match="one major version"):
        tenant_subscribe(tenant_id=tenant.id, module="test", version=2)
    assert not Subscription.objects.filter(tenant_id=tenant.id, module__name="test").exists()


def test_admin_refuses_a_dependency_that_makes_a_cycle(operator):
    depend("notes", "tags")
    response = operator.post(
        "/admin/subscriptions/moduledependency/add/",
        {
            "module": Module.objects.get(name="tags").id,
            "dependency": Module.objects.get(name="notes").id,
            "version": 1,
        },
    )
    assert response.status_code == 200
    assert "This dependency makes a cycle: notes → tags → notes." in response.content.decode()
    assert ModuleDependency.objects.count() == 1


def test_admin_refuses_a_dependency_on_a_missing_version(operator):
    response = operator.post(
        "/admin/subscriptions/moduledependency/add/",
        {
            "module": Module.objects.get_or_create(name="tags")[0].id,
            "dependency": Module.objects.get_or_create(name="test")[0].id,
            "version": 7,
        },
    )
    assert response.status_code == 200
    assert "no such module version is installed" in response.content.decode()
    assert not ModuleDependency.objects.exists()


def test_admin_refuses_a_dependency_that_gives_a_tenant_two_majors(operator, make_tenant, settings):
    settings.AUTO_MIGRATION = False
    tenant = make_tenant(modules=[("tags", 1), ("test", 2)], provision=False)
    tags = Module.objects.get(name="tags")
    response = operator.post(
        f"/admin/subscriptions/module/{tags.id}/change/",
        {
            "name": "tags",
            "dependencies-TOTAL_FORMS": 1,
            "dependencies-INITIAL_FORMS": 0,
            "dependencies-0-dependency": Module.objects.get(name="test").id,
            "dependencies-0-version": 1,
        },
    )
    assert response.status_code == 200
    page = response.content.decode()
    assert f"Tenant &#x27;{tenant.name}&#x27; would need two major versions" in page
    assert not ModuleDependency.objects.exists()


def test_admin_accepts_a_valid_dependency(operator):
    response = operator.post(
        "/admin/subscriptions/moduledependency/add/",
        {
            "module": Module.objects.get_or_create(name="tags")[0].id,
            "dependency": Module.objects.get_or_create(name="test")[0].id,
            "version": 1,
        },
    )
    assert response.status_code == 302
    assert ModuleDependency.objects.filter(module__name="tags", dependency__name="test", version=1).exists()


def test_admin_refuses_a_subscription_that_conflicts(operator, chain, make_tenant, settings):
    settings.AUTO_MIGRATION = False
    tenant = make_tenant(modules=[("notes", 1)], provision=False)
    response = operator.post(
        "/admin/subscriptions/subscription/add/",
        {"tenant": tenant.id, "module": Module.objects.get(name="test").id, "version": 2},
    )
    assert response.status_code == 200
    assert "one major version of a module" in response.content.decode()
    assert Subscription.objects.filter(tenant_id=tenant.id).count() == 1


def test_admin_refuses_conflicting_inline_subscriptions(operator, chain, settings):
    settings.AUTO_MIGRATION = False
    response = operator.post(
        "/admin/tenants/tenant/add/",
        {
            "name": "clashing_tenant",
            "user": "clashing_tenant",
            "password": "pw",
            "per_day_backups": 1,
            "max_backups": 10,
            "subscriptions-TOTAL_FORMS": 2,
            "subscriptions-INITIAL_FORMS": 0,
            "subscriptions-0-module": Module.objects.get(name="notes").id,
            "subscriptions-0-version": 1,
            "subscriptions-1-module": Module.objects.get(name="test").id,
            "subscriptions-1-version": 2,
        },
    )
    assert response.status_code == 200
    assert "one major version of a module" in response.content.decode()
    from tenants.models import Tenant

    assert not Tenant.objects.filter(name="clashing_tenant").exists()
