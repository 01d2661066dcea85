"""Main, forced and temporary seeds, in the master and in tenant databases, and `manage.py seed`."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connections

from m3saas.bookkeeping.models import SeedRecord
from m3saas.engines import engine
from m3saas.seeding import SeedError, seeds_apply, seeds_temporary_apply, seeds_temporary_remove
from m3saas.tenancy.connections import tenant_connection_register
from m3saas.tenancy.migrate import tenant_migrate_schema
from modules.test.v1.models import Animal
from modules.test.v2.models import Animal as AnimalV2
from subscriptions.models import Module, Subscription
from tenants.models import Tenant

pytestmark = pytest.mark.django_db

# modules/test/v1/fixtures/01_animals.json
MAIN_ANIMALS = ["cat", "dog", "owl"]
TEMPORARY_ANIMALS = ["temporary mouse", "temporary frog"]


@pytest.fixture(autouse=True)
def _no_auto_migration(settings):
    """These tests seed by hand; automatic provisioning (and seeding) of new tenants stays off."""
    settings.AUTO_MIGRATION = False
    settings.ALWAYS_FORCE_MAIN_SEEDS = False


@pytest.fixture
def bare_tenant(make_tenant):
    """A tenant whose database is created and migrated, but not seeded."""

    def make(modules: list[tuple[str, int]] | None = None):
        info = make_tenant(modules=modules or [("test", 1)], provision=False)
        engine().database_create(info)
        tenant_connection_register(info)
        tenant_migrate_schema(info)
        return info

    return make


@pytest.fixture
def seed_dir(tmp_path, settings):
    """An empty master seed folder; `write(name, blocks)` adds a file to it."""
    folder = tmp_path / "fixtures"
    folder.mkdir()
    settings.MASTER_SEEDS_DIR = folder

    def write(name: str, blocks: Any) -> Path:
        path = folder / name
        path.write_text(json.dumps(blocks), encoding="utf-8")
        return path

    write.folder = folder  # type: ignore[attr-defined]
    return write


def unique(prefix: str = "s") -> str:
    return f"{prefix}{uuid.uuid4().hex[:12]}"


def tenant_block(*records: dict[str, Any], temporary: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {"model": "tenants.tenant", "main": list(records), "temporary": temporary or []}


def tenant_record(tenant_id: int, name: str, **extra: Any) -> dict[str, Any]:
    return {"id": tenant_id, "name": name, "user": name, "password": "pw", "per_day_backups": 1, **extra}


def free_tenant_id() -> int:
    last = Tenant.objects.order_by("-id").first()
    return (last.id if last else 0) + 1000


def names(alias: str) -> list[str]:
    return list(Animal.objects.using(alias).order_by("id").values_list("name", flat=True))


# --- main and forced seeds -----------------------------------------------------------------


def test_main_seeds_are_inserted_in_the_tenant_database(bare_tenant):
    tenant = bare_tenant()
    report = seeds_apply(alias=tenant.alias)
    assert names(tenant.alias) == MAIN_ANIMALS
    assert report.inserted == 3
    assert report.files == ["modules/test/v1/fixtures/01_animals.json"]
    kinds = set(SeedRecord.objects.using(tenant.alias).values_list("model", "object_pk", "kind"))
    assert kinds == {("test_v1.animal", str(pk), "main") for pk in (1, 2, 3)}


def test_main_seed_keeps_a_later_edit_on_the_next_run(bare_tenant):
    tenant = bare_tenant()
    seeds_apply(alias=tenant.alias)
    Animal.objects.using(tenant.alias).filter(pk=2).update(name="wolf")
    report = seeds_apply(alias=tenant.alias)
    assert report.inserted == 0
    assert report.updated == 0  # the forced owl is unchanged, so nothing is rewritten
    assert names(tenant.alias) == ["cat", "wolf", "owl"]


def test_forced_main_seed_is_rewritten_on_the_next_run(bare_tenant):
    tenant = bare_tenant()
    seeds_apply(alias=tenant.alias)
    Animal.objects.using(tenant.alias).filter(pk=3).update(name="eagle")
    Animal.objects.using(tenant.alias).filter(pk=2).update(name="wolf")
    report = seeds_apply(alias=tenant.alias)
    assert report.updated == 1
    assert names(tenant.alias) == ["cat", "wolf", "owl"]


def test_a_deleted_main_seed_is_inserted_again(bare_tenant):
    tenant = bare_tenant()
    seeds_apply(alias=tenant.alias)
    # Plain SQL: Django's own delete() would also query tables of modules this tenant lacks.
    with connections[tenant.alias].cursor() as cursor:
        cursor.execute("DELETE FROM test_v1_animal WHERE id = 1")
    assert seeds_apply(alias=tenant.alias).inserted == 1
    assert names(tenant.alias) == MAIN_ANIMALS


def test_force_rewrites_every_main_seed_in_place(bare_tenant):
    tenant = bare_tenant()
    seeds_apply(alias=tenant.alias)
    Animal.objects.using(tenant.alias).filter(pk=2).update(name="wolf")
    Animal.objects.using(tenant.alias).filter(pk=3).update(name="eagle")
    user_row = Animal.objects.using(tenant.alias).create(name="mine")
    report = seeds_apply(alias=tenant.alias, force=True)
    assert (report.inserted, report.updated, report.deleted) == (0, 2, 0)
    assert names(tenant.alias) == [*MAIN_ANIMALS, "mine"]
    assert Animal.objects.using(tenant.alias).get(pk=user_row.pk).name == "mine"


def test_always_force_main_seeds_setting_forces_every_run(bare_tenant, settings):
    tenant = bare_tenant()
    seeds_apply(alias=tenant.alias)
    Animal.objects.using(tenant.alias).filter(pk=1).update(name="lion")
    settings.ALWAYS_FORCE_MAIN_SEEDS = True
    assert seeds_apply(alias=tenant.alias).updated == 1
    assert names(tenant.alias) == MAIN_ANIMALS


def test_a_row_with_a_seed_id_that_no_seed_inserted_is_left_alone(bare_tenant):
    tenant = bare_tenant()
    Animal.objects.using(tenant.alias).create(pk=3, name="users-owl")
    report = seeds_apply(alias=tenant.alias, force=True)
    assert report.skipped == 1
    assert names(tenant.alias) == ["cat", "dog", "users-owl"]
    assert not SeedRecord.objects.using(tenant.alias).filter(object_pk="3").exists()


def test_force_on_the_master_keeps_a_seeded_tenants_subscriptions(seed_dir):
    tenant_id, name = free_tenant_id(), unique()
    module = Module.objects.create(name=unique("m"))
    seed_dir("01_tenants.json", tenant_block(tenant_record(tenant_id, name, per_day_backups=3)))
    seeds_apply()
    tenant = Tenant.objects.get(pk=tenant_id)
    subscription = Subscription.objects.create(tenant=tenant, module=module, version=1)
    Tenant.objects.filter(pk=tenant_id).update(per_day_backups=7, max_backups=20)
    report = seeds_apply(force=True)
    assert (report.inserted, report.updated, report.deleted) == (0, 1, 0)
    tenant.refresh_from_db()
    assert (tenant.name, tenant.per_day_backups) == (name, 3)
    assert tenant.max_backups == 20  # not in the seed: a user's value stays
    assert Subscription.objects.filter(pk=subscription.pk, tenant_id=tenant_id).exists()


def test_master_main_seed_keeps_a_later_edit(seed_dir):
    tenant_id, name = free_tenant_id(), unique()
    seed_dir("01_tenants.json", tenant_block(tenant_record(tenant_id, name)))
    assert seeds_apply().inserted == 1
    Tenant.objects.filter(pk=tenant_id).update(per_day_backups=9)
    assert seeds_apply().inserted == 0
    assert Tenant.objects.get(pk=tenant_id).per_day_backups == 9
    assert SeedRecord.objects.using("default").filter(model="tenants.tenant", object_pk=str(tenant_id)).exists()


def test_foreign_keys_are_given_by_primary_key_or_field_id(seed_dir):
    tenant_id, module_id = free_tenant_id(), Module.objects.create(name=unique("m")).id + 1000
    seed_dir("01_tenants.json", tenant_block(tenant_record(tenant_id, unique())))
    seed_dir("02_modules.json", {"model": "subscriptions.module", "main": [{"id": module_id, "name": unique("m")}]})
    seed_dir(
        "03_subscriptions.json",
        [
            {
                "model": "subscriptions.subscription",
                "main": [{"id": module_id, "tenant": tenant_id, "module_id": module_id, "version": 2}],
            }
        ],
    )
    assert seeds_apply().inserted == 3
    assert Subscription.objects.filter(pk=module_id, tenant_id=tenant_id, module_id=module_id, version=2).exists()


# --- temporary seeds ---------------------------------------------------------------------


def test_temporary_seeds_are_inserted_again_on_each_run(bare_tenant):
    tenant = bare_tenant()
    first = seeds_temporary_apply(alias=tenant.alias)
    second = seeds_temporary_apply(alias=tenant.alias)
    assert (first.inserted, second.inserted) == (2, 2)
    assert sorted(names(tenant.alias)) == sorted(TEMPORARY_ANIMALS * 2)
    assert SeedRecord.objects.using(tenant.alias).filter(kind="temporary").count() == 4


def test_deseeding_removes_exactly_the_temporary_seeds(bare_tenant):
    tenant = bare_tenant()
    seeds_apply(alias=tenant.alias)
    seeds_temporary_apply(alias=tenant.alias)
    Animal.objects.using(tenant.alias).create(name="temporary mouse")  # a user's row, same name
    seeds_temporary_apply(alias=tenant.alias)
    report = seeds_temporary_remove(alias=tenant.alias)
    assert report.deleted == 4
    assert names(tenant.alias) == [*MAIN_ANIMALS, "temporary mouse"]
    assert not SeedRecord.objects.using(tenant.alias).filter(kind="temporary").exists()
    assert SeedRecord.objects.using(tenant.alias).filter(kind="main").count() == 3


def test_deseeding_twice_deletes_nothing_the_second_time(bare_tenant):
    tenant = bare_tenant()
    seeds_temporary_apply(alias=tenant.alias)
    assert seeds_temporary_remove(alias=tenant.alias).deleted == 2
    assert seeds_temporary_remove(alias=tenant.alias).deleted == 0


def test_deseeding_that_would_cascade_to_a_users_row_is_refused(seed_dir):
    name = unique()
    seed_dir("01_tenants.json", tenant_block(temporary=[{"name": name, "user": name, "password": "pw"}]))
    seeds_temporary_apply()
    tenant = Tenant.objects.get(name=name)
    Subscription.objects.create(tenant=tenant, module=Module.objects.create(name=unique("m")), version=1)
    with pytest.raises(SeedError, match="not temporary seeds"):
        seeds_temporary_remove()
    assert Tenant.objects.filter(name=name).exists()
    assert Subscription.objects.filter(tenant=tenant).exists()
    assert SeedRecord.objects.using("default").filter(kind="temporary").count() == 1


def test_temporary_seed_with_an_id_is_refused(seed_dir):
    seed_dir("01_tenants.json", tenant_block(temporary=[tenant_record(free_tenant_id(), unique())]))
    with pytest.raises(SeedError, match=r"temporary\[0\].*drop 'id'"):
        seeds_temporary_apply()


# --- failures leave the database as it was ---------------------------------------------------


def assert_master_unchanged(before: int) -> None:
    assert Tenant.objects.count() == before
    assert not SeedRecord.objects.using("default").exists()


def test_unknown_model_fails_naming_the_file_and_changes_nothing(seed_dir):
    before = Tenant.objects.count()
    seed_dir("01_tenants.json", tenant_block(tenant_record(free_tenant_id(), unique())))
    seed_dir("02_zoo.json", {"model": "zoo.keeper", "main": [{"id": 1, "name": "x"}]})
    with pytest.raises(SeedError) as failure:
        seeds_apply()
    assert "02_zoo.json" in failure.value.message
    assert "unknown model 'zoo.keeper'" in failure.value.message
    assert_master_unchanged(before)


def test_unknown_field_fails_naming_the_file_record_and_field(seed_dir):
    before = Tenant.objects.count()
    first = free_tenant_id()
    bad = tenant_record(first + 1, unique(), colour="red")
    seed_dir("01_tenants.json", tenant_block(tenant_record(first, unique()), bad))
    with pytest.raises(SeedError) as failure:
        seeds_apply()
    message = failure.value.message
    assert "01_tenants.json" in message
    assert f"tenants.tenant main[1] (id {first + 1})" in message
    assert "unknown field 'colour'" in message
    assert (failure.value.index, failure.value.record_id) == (1, first + 1)
    assert_master_unchanged(before)


def test_wrong_value_fails_with_the_fields_message(seed_dir):
    before = Tenant.objects.count()
    seed_dir("01_tenants.json", tenant_block(tenant_record(free_tenant_id(), unique(), per_day_backups="many")))
    with pytest.raises(SeedError, match=r"main\[0\].*per_day_backups: .*must be an integer"):
        seeds_apply()
    assert_master_unchanged(before)


def test_unique_constraint_violation_fails_and_changes_nothing(seed_dir):
    before = Tenant.objects.count()
    first, name = free_tenant_id(), unique()
    seed_dir("01_tenants.json", tenant_block(tenant_record(first, name), tenant_record(first + 1, name)))
    with pytest.raises(SeedError, match=r"main\[1\] \(id \d+\): .*already exists"):
        seeds_apply()
    assert_master_unchanged(before)


def test_check_constraint_violation_fails_and_changes_nothing(seed_dir):
    before = Tenant.objects.count()
    tenant_id, module = free_tenant_id(), Module.objects.create(name=unique("m"))
    seed_dir("01_tenants.json", tenant_block(tenant_record(tenant_id, unique())))
    seed_dir(
        "02_subscriptions.json",
        {
            "model": "subscriptions.subscription",
            "main": [{"id": 1, "tenant": tenant_id, "module": module.id, "version": 0}],
        },
    )
    with pytest.raises(
        SeedError,
        match=r"02_subscriptions.json: subscriptions.subscription main\[0\] \(id 1\): .*version_positive.* is violated",
    ):
        seeds_apply()
    assert_master_unchanged(before)
    assert not Subscription.objects.filter(module=module).exists()


def test_missing_related_row_fails(seed_dir):
    before = Tenant.objects.count()
    module = Module.objects.create(name=unique("m"))
    seed_dir(
        "01_subscriptions.json",
        {"model": "subscriptions.subscription", "main": [{"id": 1, "tenant": 987654, "module": module.id}]},
    )
    with pytest.raises(
        SeedError, match=r"main\[0\] \(id 1\): tenant: tenant instance with id 987654 is not a valid choice"
    ):
        seeds_apply()
    assert_master_unchanged(before)


def test_unsafe_tenant_name_in_a_master_seed_is_refused(seed_dir):
    before = Tenant.objects.count()
    record = tenant_record(free_tenant_id(), "x`; DROP DATABASE mysql; --")
    record["user"] = unique()
    seed_dir("01_tenants.json", tenant_block(record))
    with pytest.raises(SeedError, match=r"main\[0\].*name: .*is not a safe database name"):
        seeds_apply()
    assert_master_unchanged(before)


def test_invalid_json_names_the_file(seed_dir):
    (seed_dir.folder / "01_broken.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(SeedError, match=r"01_broken.json: not valid JSON"):
        seeds_apply()


def test_a_failing_tenant_seed_leaves_the_tenant_database_unchanged(bare_tenant, tmp_path):
    tenant = bare_tenant()
    broken = tmp_path / "99_broken.json"
    broken.write_text(
        json.dumps({"model": "test_v1.animal", "main": [{"id": 10, "name": "ok"}, {"id": 11, "nam": "typo"}]}),
        encoding="utf-8",
    )
    good = Path(__file__).resolve().parents[1] / "modules/test/v1/fixtures/01_animals.json"
    with pytest.raises(SeedError, match=r"99_broken.json: test_v1.animal main\[1\] \(id 11\): unknown field 'nam'"):
        seeds_apply(alias=tenant.alias, files=[good, broken])
    assert names(tenant.alias) == []
    assert not SeedRecord.objects.using(tenant.alias).exists()


def test_a_master_model_in_a_tenant_seed_is_refused(bare_tenant, tmp_path):
    tenant = bare_tenant()
    path = tmp_path / "01_tenants.json"
    path.write_text(json.dumps(tenant_block(tenant_record(1, unique()))), encoding="utf-8")
    with pytest.raises(SeedError, match="no table in tenant database"):
        seeds_apply(alias=tenant.alias, files=[path])


# --- the right database --------------------------------------------------------------------


def test_tenant_seeds_land_only_in_that_tenants_database(bare_tenant):
    first, second = bare_tenant(), bare_tenant()
    seeds_apply(alias=first.alias)
    assert names(first.alias) == MAIN_ANIMALS
    assert names(second.alias) == []
    assert not SeedRecord.objects.using(second.alias).exists()
    assert not SeedRecord.objects.using("default").exists()


def test_each_tenant_gets_the_seeds_of_its_module_version(bare_tenant):
    tenant = bare_tenant([("test", 2)])
    report = seeds_apply(alias=tenant.alias)
    assert report.files == ["modules/test/v2/fixtures/01_animals.json"]
    first = AnimalV2.objects.using(tenant.alias).order_by("id").values_list("name", "species").first()
    assert first == ("cat", "Felis catus")


def test_master_seeds_do_not_reach_tenant_databases(bare_tenant, seed_dir):
    tenant = bare_tenant()
    seed_dir("01_tenants.json", tenant_block(tenant_record(free_tenant_id(), unique())))
    seeds_apply()
    assert not SeedRecord.objects.using(tenant.alias).exists()
    assert SeedRecord.objects.using("default").count() == 1


# --- manage.py seed ----------------------------------------------------------------------------


def test_command_seeds_the_master_by_default(seed_dir, capsys):
    tenant_id = free_tenant_id()
    seed_dir("01_tenants.json", tenant_block(tenant_record(tenant_id, unique())))
    call_command("seed")
    assert "default: main seeds: 1 inserted, 0 updated" in capsys.readouterr().out
    assert Tenant.objects.filter(pk=tenant_id).exists()


def test_command_database_seeds_one_tenant(bare_tenant, capsys):
    tenant, other = bare_tenant(), bare_tenant()
    call_command("seed", database=tenant.alias)
    assert f"{tenant.alias}: main seeds: 3 inserted" in capsys.readouterr().out
    assert names(tenant.alias) == MAIN_ANIMALS
    assert names(other.alias) == []


def test_command_temporary_then_deseed(bare_tenant, capsys):
    tenant = bare_tenant()
    call_command("seed", "--temporary", database=tenant.alias)
    call_command("seed", "--temporary", database=tenant.alias)
    assert len(names(tenant.alias)) == 4
    call_command("seed", "--deseed", database=tenant.alias)
    assert "4 row(s) deleted" in capsys.readouterr().out
    assert names(tenant.alias) == []


def test_command_force_rewrites_main_seeds(bare_tenant):
    tenant = bare_tenant()
    call_command("seed", database=tenant.alias)
    Animal.objects.using(tenant.alias).filter(pk=1).update(name="lion")
    call_command("seed", "--force", database=tenant.alias)
    assert names(tenant.alias) == MAIN_ANIMALS


def test_command_unknown_database_is_an_error():
    with pytest.raises(CommandError, match="No tenant with id or name 'nosuchtenant'"):
        call_command("seed", database="nosuchtenant")


def test_command_options_exclude_each_other():
    with pytest.raises(CommandError):
        call_command("seed", "--temporary", "--deseed")
    with pytest.raises(CommandError):
        call_command("seed", "--all-tenants", "--database=default")


def test_command_all_tenants_carries_on_past_a_failing_tenant(bare_tenant, make_tenant, capsys):
    first = bare_tenant()
    broken = make_tenant(modules=[("test", 1)], provision=False)  # no database
    last = bare_tenant()
    with pytest.raises(CommandError, match=f"1 tenant\\(s\\) failed: {broken.name}"):
        call_command("seed", "--all-tenants")
    captured = capsys.readouterr()
    assert f"{broken.name}: FAILED" in captured.err
    assert f"{first.alias}: main seeds: 3 inserted" in captured.out
    assert "2 of 3 tenant(s) seeded." in captured.out
    assert names(first.alias) == MAIN_ANIMALS
    assert names(last.alias) == MAIN_ANIMALS
    assert not SeedRecord.objects.using("default").exists()


def test_command_all_tenants_succeeds_when_every_tenant_does(bare_tenant, capsys):
    bare_tenant(), bare_tenant()
    call_command("seed", "--all-tenants", "--temporary")
    assert "2 of 2 tenant(s) seeded." in capsys.readouterr().out
