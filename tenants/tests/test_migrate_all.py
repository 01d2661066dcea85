"""All-tenants migration: recorded runs, failures that stay contained, reruns, progress, report."""

from __future__ import annotations

import pytest
from django.core.management import CommandError, call_command

from m3saas.tenancy.context import use_tenant
from modules.test.v1.models import Animal
from subscriptions.models import Module, Subscription
from tenants.models import Tenant, TenantMigrationRun
from tenants.selectors import tenant_info_from_row
from tenants.services import tenants_migrate_all
from tenants.tests.helpers import TTY, break_tenant, repair_tenant, tables

pytestmark = pytest.mark.django_db


def runs(tenant_id: int) -> list[TenantMigrationRun]:
    return list(TenantMigrationRun.objects.filter(tenant_id=tenant_id).order_by("started_at", "id"))


def test_each_tenants_result_is_recorded_in_the_master(make_tenant):
    tenant = make_tenant(provision=False)
    call_command("migrate_tenants", workers=1)
    [run] = runs(tenant.id)
    assert run.status == TenantMigrationRun.Status.OK
    assert run.finished_at is not None and run.finished_at >= run.started_at
    assert run.applied == ["bookkeeping.0001_initial", "bookkeeping.0002_idempotencykey", "test_v1.0001_initial"]
    assert run.error == ""
    assert Tenant.objects.get(pk=tenant.id).schema_state == Tenant.SchemaState.READY


def test_a_broken_tenant_fails_alone_and_the_others_are_migrated(make_tenant):
    first, broken, last = (make_tenant(provision=False) for _ in range(3))
    break_tenant(broken)
    with pytest.raises(CommandError, match=broken.name):
        call_command("migrate_tenants", workers=1)
    for good in (first, last):
        assert "test_v1_animal" in tables(good.alias)
        assert runs(good.id)[-1].status == TenantMigrationRun.Status.OK
    [failure] = runs(broken.id)
    assert failure.status == TenantMigrationRun.Status.FAILED
    assert "test_v1_animal" in failure.error
    assert Tenant.objects.get(pk=broken.id).schema_state == Tenant.SchemaState.FAILED


def test_the_broken_tenants_own_data_is_left_as_it_was(make_tenant):
    broken = make_tenant(provision=False)
    break_tenant(broken)
    with pytest.raises(CommandError):
        call_command("migrate_tenants", workers=1)
    from django.db import connections

    with connections[broken.alias].cursor() as cursor:
        cursor.execute("SELECT stray FROM test_v1_animal")
        assert [tuple(r) for r in cursor.fetchall()] == [(42,)]


def test_failed_reruns_only_the_failed_tenant_after_repair(make_tenant, capsys):
    good, broken = make_tenant(provision=False), make_tenant(provision=False)
    break_tenant(broken)
    with pytest.raises(CommandError):
        call_command("migrate_tenants", workers=1)
    repair_tenant(broken)
    capsys.readouterr()
    call_command("migrate_tenants", "--failed", workers=1)
    out = capsys.readouterr().out
    assert f"{broken.name}: OK, 1 applied" in out  # bookkeeping went in on the first run
    assert good.name not in out
    assert len(runs(good.id)) == 1
    assert [r.status for r in runs(broken.id)] == ["failed", "ok"]
    assert "test_v1_animal" in tables(broken.alias)


def test_failed_with_nothing_failed_does_nothing(make_tenant, capsys):
    tenant = make_tenant()
    call_command("migrate_tenants", "--failed", workers=1)
    assert "No failed tenant to rerun." in capsys.readouterr().out
    assert runs(tenant.id) == []


def test_a_run_that_never_finished_is_rerun_by_failed(make_tenant):
    """A process that died mid-run leaves a run without `finished_at`; `--failed` completes it."""
    tenant = make_tenant(modules=[])  # bookkeeping applied, as far as the dead run got
    row = Tenant.objects.get(pk=tenant.id)
    Subscription.objects.create(tenant=row, module=Module.objects.get_or_create(name="test")[0], version=1)
    TenantMigrationRun.objects.create(tenant=row)  # status running, never finished
    call_command("migrate_tenants", "--failed", workers=1)
    assert runs(tenant.id)[-1].status == TenantMigrationRun.Status.OK
    assert runs(tenant.id)[-1].applied == ["test_v1.0001_initial"]
    assert "test_v1_animal" in tables(tenant.alias)


def test_migrating_again_keeps_every_row(make_tenant):
    tenant = make_tenant()
    Animal.objects.using(tenant.alias).create(name="kept")
    row = Tenant.objects.get(pk=tenant.id)
    Subscription.objects.create(tenant=row, module=Module.objects.get_or_create(name="tags")[0], version=1)
    call_command("migrate_tenants", workers=1)
    call_command("migrate_tenants", workers=1)
    assert "tags_v1_tag" in tables(tenant.alias)
    assert list(Animal.objects.using(tenant.alias).values_list("name", flat=True)) == ["kept"]


def test_tenants_are_migrated_in_parallel_workers(make_tenant):
    tenants = [make_tenant(provision=False) for _ in range(3)]
    results = tenants_migrate_all(workers=3)
    assert [r.tenant for r in results] == [t.name for t in tenants]
    assert all(r.ok for r in results)
    for tenant in tenants:
        assert "test_v1_animal" in tables(tenant.alias)


def test_a_tenant_whose_dependencies_conflict_fails_alone(make_tenant):
    from subscriptions.models import ModuleDependency

    good = make_tenant(provision=False)
    clash = make_tenant(provision=False, modules=[("test", 2)])
    # tags needs test v1; the clashing tenant has test v2 (inserted behind the admin's back).
    tags = Module.objects.create(name="tags")
    ModuleDependency.objects.create(module=tags, dependency=Module.objects.get(name="test"), version=1)
    Subscription.objects.create(tenant_id=clash.id, module=tags, version=1)
    results = tenants_migrate_all(workers=1)
    by_name = {r.tenant: r for r in results}
    assert by_name[good.name].ok
    assert "one major version of a module" in str(by_name[clash.name].error)
    assert runs(clash.id)[-1].status == TenantMigrationRun.Status.FAILED


def test_progress_has_a_line_per_tenant_with_counts(make_tenant, capsys):
    first, second = make_tenant(provision=False), make_tenant(provision=False)
    call_command("migrate_tenants", workers=1)
    out = capsys.readouterr().out
    assert f"[1/2] {first.name}: OK, 3 applied" in out
    assert f"[2/2] {second.name}: OK, 3 applied" in out
    assert "2 of 2 tenants migrated." in out
    assert "\r" not in out  # no progress bar when stdout is not a terminal


def test_a_terminal_gets_a_progress_bar(make_tenant):
    make_tenant(provision=False)
    out = TTY()
    call_command("migrate_tenants", workers=1, stdout=out)
    text = out.getvalue()
    assert "\r\033[K" in text
    assert "0/1 tenants" in text and "1/1 tenants" in text


def test_seed_option_applies_main_seeds(make_tenant):
    tenant = make_tenant(provision=False)
    call_command("migrate_tenants", "--seed", workers=1)
    assert set(Animal.objects.using(tenant.alias).values_list("name", flat=True)) >= {"cat", "dog"}
    assert runs(tenant.id)[-1].seeded


def test_report_lists_the_tenant_behind_and_its_missing_migrations(make_tenant, capsys):
    ready = make_tenant()
    behind = make_tenant(modules=[])
    row = Tenant.objects.get(pk=behind.id)
    Subscription.objects.create(tenant=row, module=Module.objects.get_or_create(name="test")[0], version=2)
    call_command("migration_report")
    out = capsys.readouterr().out
    assert f"{behind.name} (#{behind.id}" in out
    assert "test_v2.0001_initial" in out
    assert ready.name not in out
    with pytest.raises(CommandError, match="1 tenant"):
        call_command("migration_report", "--check")


def test_report_shows_a_missing_database_without_creating_it(make_tenant, capsys):
    from m3saas.engines import engine

    tenant = make_tenant(provision=False)
    call_command("migration_report")
    out = capsys.readouterr().out
    assert "database missing; 3 migration(s) to apply" in out
    assert "test_v1.0001_initial" in out
    assert not engine().database_exists(tenant)


def test_report_shows_the_last_failure(make_tenant, capsys):
    broken = make_tenant(provision=False)
    break_tenant(broken)
    with pytest.raises(CommandError):
        call_command("migrate_tenants", workers=1)
    capsys.readouterr()
    call_command("migration_report")
    out = capsys.readouterr().out
    assert f"{broken.name}" in out
    assert "(command): failed:" in out


def test_tenant_info_of_a_migrated_tenant_is_ready(make_tenant):
    tenant = make_tenant()
    info = tenant_info_from_row(Tenant.objects.get(pk=tenant.id))
    assert info.schema_state == "ready"
    with use_tenant(info):
        assert Animal.objects.count() == 0
