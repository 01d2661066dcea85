"""Database views of module versions: created by migrations where the module is, read-only."""

from __future__ import annotations

from importlib import import_module

import pytest
from django.core.management import call_command
from django.db import connections, models
from django.db.migrations.state import ProjectState
from django.test.utils import isolate_apps

from m3saas.db_views import ChangeView, CreateView, DropView, ReadOnlyModelError, ViewModel, view_names
from m3saas.tenancy.connections import tenant_connection_register
from m3saas.tenancy.context import use_tenant
from m3saas.tenancy.migrate import tenant_migrate_schema, tenant_unmigrate_app
from modules.test.v2.models import Animal, AnimalStat

pytestmark = pytest.mark.django_db

VIEW = "test_v2_animal_stats"
BY_SPECIES = "SELECT species AS letter, COUNT(*) AS animals FROM test_v2_animal GROUP BY species"


def stats(tenant) -> dict[str, int]:
    return dict(AnimalStat.objects.using(tenant.alias).values_list("letter", "animals"))


def run(operation, tenant, *, backwards: bool = False, app_label: str = "test_v2") -> None:
    with use_tenant(tenant), connections[tenant.alias].schema_editor() as editor:
        method = operation.database_backwards if backwards else operation.database_forwards
        method(app_label, editor, ProjectState(), ProjectState())


def test_subscribing_tenant_gets_the_view_and_another_does_not(make_tenant):
    on_v2, on_v1 = make_tenant(modules=[("test", 2)]), make_tenant(modules=[("test", 1)])
    assert VIEW in view_names(on_v2.alias)
    assert VIEW not in view_names(on_v1.alias)
    assert "test_v2_animal" not in connections[on_v1.alias].introspection.table_names()


def test_migrate_database_command_creates_the_view_with_the_tables(make_tenant):
    tenant = make_tenant(modules=[("test", 2)], provision=False)
    tenant_connection_register(tenant)
    call_command("migrate", database=tenant.alias, verbosity=0)
    assert VIEW in view_names(tenant.alias)
    assert "test_v2_animal" in connections[tenant.alias].introspection.table_names()


def test_view_counts_rows_after_inserts(make_tenant):
    tenant = make_tenant(modules=[("test", 2)])
    before = stats(tenant)
    Animal.objects.using(tenant.alias).bulk_create([Animal(name=n) for n in ["kiwi", "Koala", "lynx"]])
    after = stats(tenant)
    assert after["K"] == before.get("K", 0) + 2
    assert after["L"] == before.get("L", 0) + 1


@pytest.mark.parametrize(
    "write",
    [
        lambda: AnimalStat(letter="Q", animals=1).save(),
        lambda: AnimalStat.objects.create(letter="Q", animals=1),
        lambda: AnimalStat.objects.bulk_create([AnimalStat(letter="Q", animals=1)]),
        lambda: AnimalStat.objects.all().update(animals=0),
        lambda: AnimalStat.objects.all().delete(),
        lambda: AnimalStat.objects.get_or_create(letter="Q", defaults={"animals": 1}),
        lambda: AnimalStat.objects.first().delete(),
    ],
    ids=["save", "create", "bulk_create", "update", "queryset_delete", "get_or_create", "instance_delete"],
)
def test_writes_through_the_view_model_raise_read_only_error(make_tenant, write):
    tenant = make_tenant(modules=[("test", 2)])
    Animal.objects.using(tenant.alias).create(name="quail")
    before = stats(tenant)
    with use_tenant(tenant), pytest.raises(ReadOnlyModelError, match="database view") as caught:
        write()
    assert caught.value.status_code == 405
    assert stats(tenant) == before


def test_unmigrating_the_app_drops_the_view_and_migrating_creates_it_again(make_tenant):
    tenant = make_tenant(modules=[("test", 2)])
    tenant_unmigrate_app(tenant, "test_v2")
    assert VIEW not in view_names(tenant.alias)
    assert "test_v2_animal" not in connections[tenant.alias].introspection.table_names()
    tenant_migrate_schema(tenant)
    assert VIEW in view_names(tenant.alias)


def test_change_view_replaces_the_definition_and_reverses(make_tenant):
    tenant = make_tenant(modules=[("test", 2)])
    Animal.objects.using(tenant.alias).create(name="emu", species="bird")
    original = stats(tenant)
    previous = import_module("modules.test.v2.migrations.0002_animal_stats_view").ANIMAL_STATS
    change = ChangeView(VIEW, BY_SPECIES, previous=previous)
    run(change, tenant)
    assert stats(tenant)["bird"] >= 1
    run(change, tenant, backwards=True)
    assert stats(tenant) == original


def test_drop_view_drops_and_reverses(make_tenant):
    tenant = make_tenant(modules=[("test", 2)])
    drop = DropView(VIEW, previous=BY_SPECIES)
    run(drop, tenant)
    assert VIEW not in view_names(tenant.alias)
    run(drop, tenant, backwards=True)
    assert VIEW in view_names(tenant.alias)


def test_view_operations_skip_a_tenant_without_the_module(make_tenant):
    tenant = make_tenant(modules=[("test", 1)])
    run(CreateView("test_v2_other", "SELECT 1 AS letter, 1 AS animals"), tenant)
    assert "test_v2_other" not in view_names(tenant.alias)


def test_a_vendor_without_a_definition_is_a_clear_error(make_tenant):
    tenant = make_tenant(modules=[("test", 2)])
    with pytest.raises(ValueError, match="no definition for the"):
        run(CreateView("test_v2_other", {"oracle": "SELECT 1 FROM dual"}), tenant)


@pytest.mark.parametrize("name", ["Bad", "x; DROP TABLE y", "1view"])
def test_unsafe_view_names_are_refused(name):
    with pytest.raises(ValueError, match="safe view name"):
        CreateView(name, "SELECT 1")


def test_more_than_one_statement_is_refused(make_tenant):
    tenant = make_tenant(modules=[("test", 2)])
    with pytest.raises(ValueError, match="one SELECT"):
        run(CreateView("test_v2_other", "SELECT 1 AS a; DROP TABLE test_v2_animal"), tenant)
    assert "test_v2_animal" in connections[tenant.alias].introspection.table_names()


def test_a_managed_view_model_is_reported_by_checks():
    with isolate_apps("m3saas"):

        class Wrong(ViewModel):
            total = models.IntegerField()

            class Meta:
                app_label = "m3saas"
                managed = True

        class Right(ViewModel):
            total = models.IntegerField()

            class Meta:
                app_label = "m3saas"
                managed = False

        assert [error.id for error in Wrong.check()] == ["m3saas.E010"]
        assert Right.check() == []
