"""A run over all tenants skips the tenants whose migration fingerprint says nothing is pending,
without opening their databases; `--verify` opens them all; any change is migrated."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

import pytest
from django.core.management import CommandError, call_command
from django.db import connections

from m3saas.tenancy.each import tenant_connections_close
from m3saas.tenancy.info import TenantInfo
from subscriptions.services import subscription_create
from tenants.backups import backup_create, backup_restore, backup_target_get
from tenants.models import Tenant, TenantMigrationRun
from tenants.services import TenantMigrationResult, tenants_migrate_all

pytestmark = pytest.mark.django_db

Status = TenantMigrationRun.Status


@pytest.fixture
def migrated(make_tenant) -> list[TenantInfo]:
    """Three tenants migrated once by a run (which keeps their fingerprints), connections closed."""
    tenants = [make_tenant() for _ in range(3)]
    assert all(result.ok for result in tenants_migrate_all())
    assert all(Tenant.objects.values_list("migration_fingerprint", flat=True))
    tenant_connections_close()
    return tenants


def by_name(results: list[TenantMigrationResult]) -> dict[str, TenantMigrationResult]:
    return {result.tenant: result for result in results}


def test_a_second_run_with_nothing_to_apply_opens_no_tenant_database(migrated, opened):
    runs_before = TenantMigrationRun.objects.count()
    results = tenants_migrate_all(workers=2)
    assert [r.ok and r.unchanged and r.applied == [] for r in results] == [True] * 3
    assert not opened & {tenant.alias for tenant in migrated}
    assert TenantMigrationRun.objects.count() == runs_before  # nothing ran, nothing to record


def test_the_command_says_how_many_tenants_were_skipped_unopened(migrated, capsys):
    call_command("migrate_tenants")
    out = capsys.readouterr().out
    assert "3 of 3 tenants migrated (3 unchanged, not opened)." in out
    assert f"{migrated[0].name}: OK, up to date (unchanged, not opened)" in out


def test_verify_catches_a_migration_row_dropped_behind_the_platforms_back(migrated, opened):
    changed = migrated[1]
    with connections[changed.alias].cursor() as cursor:
        cursor.execute("DELETE FROM django_migrations WHERE app = 'test_v1'")
    tenant_connections_close()
    assert by_name(tenants_migrate_all())[changed.name].unchanged  # the fingerprint cannot know

    results = by_name(tenants_migrate_all(verify=True))

    assert {tenant.alias for tenant in migrated} <= opened
    assert results[changed.name].applied == ["test_v1.0001_initial"] and results[changed.name].ok
    assert [results[t.name].applied for t in (migrated[0], migrated[2])] == [[], []]


def test_verify_on_the_command_line_opens_every_database(migrated, opened):
    call_command("migrate_tenants", "--verify")
    assert {tenant.alias for tenant in migrated} <= opened


def test_a_subscription_change_is_migrated_by_the_next_run(migrated):
    subscribed = migrated[0]
    subscription_create(tenant_id=subscribed.id, module="tags", version=1)
    results = by_name(tenants_migrate_all())
    assert results[subscribed.name].applied == ["tags_v1.0001_initial"]
    assert [results[t.name].unchanged for t in migrated] == [False, True, True]


def test_a_restored_tenant_is_opened_by_the_next_run(migrated, opened, settings, tmp_path):
    settings.BACKUP_DIR = tmp_path
    restored = migrated[2]
    target = backup_target_get(tenant_name=restored.name)
    backup_restore(target=target, backup=backup_create(target=target, now=datetime(2031, 1, 1, tzinfo=UTC)).backup)
    tenant_connections_close()
    opened.clear()

    results = by_name(tenants_migrate_all())

    assert not results[restored.name].unchanged and results[restored.name].ok
    assert restored.alias in opened
    assert Tenant.objects.get(pk=restored.id).migration_fingerprint == results[restored.name].fingerprint


def test_seeding_opens_every_database(migrated, opened):
    call_command("migrate_tenants", "--seed", workers=1)
    assert {tenant.alias for tenant in migrated} <= opened


def test_a_failed_run_forgets_the_fingerprint(migrated):
    broken = migrated[0]
    subscription_create(tenant_id=broken.id, module="tags", version=1)
    with connections[broken.alias].cursor() as cursor:
        cursor.execute("CREATE TABLE tags_v1_tag (stray INTEGER)")
    with pytest.raises(CommandError):
        call_command("migrate_tenants")
    assert Tenant.objects.get(pk=broken.id).migration_fingerprint == ""


def test_a_stopped_run_closes_the_runs_it_did_not_start_as_not_run(make_tenant, capsys):
    tenants = [make_tenant(provision=False) for _ in range(4)]
    stop = threading.Event()

    results = tenants_migrate_all(workers=1, stop=stop, on_result=lambda result: stop.set())

    assert [r.not_run for r in results] == [False, True, True, True]
    latest = {t.id: TenantMigrationRun.objects.filter(tenant_id=t.id).get() for t in tenants}
    assert [latest[t.id].status for t in tenants] == [Status.OK, Status.NOT_RUN, Status.NOT_RUN, Status.NOT_RUN]
    assert all(latest[t.id].finished_at for t in tenants)
    states = Tenant.objects.order_by("id").values_list("schema_state", flat=True)
    assert list(states) == ["ready", "pending", "pending", "pending"]

    call_command("migrate_tenants", "--failed")  # reruns those not run

    assert "3 of 3 tenants migrated." in capsys.readouterr().out
    assert set(Tenant.objects.values_list("schema_state", flat=True)) == {"ready"}
