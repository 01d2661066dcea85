"""The per-tenant Celery tasks run in this process (`Task.apply`, no broker), on both engines.

The same tasks on real workers over a real broker: tests in test_workers.py.
"""

from __future__ import annotations

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connections
from django.test import override_settings

from m3saas.tenancy.context import tenant_current_or_none, use_tenant
from tenants.backup_files import backup_list
from tenants.models import TenantMigrationRun
from tenants.tasks import tenant_backup_task, tenant_crons_task, tenant_migrate_task, tenant_upgrade_task
from tenants.tests.helpers import migrations_of

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def backup_dir(settings, tmp_path):
    settings.BACKUP_DIR = tmp_path / "backups"
    return settings.BACKUP_DIR


def test_interleaved_tasks_of_many_tenants_each_run_in_their_own_tenant_only(make_tenant):
    tenants = [make_tenant(provision=False) for _ in range(3)]
    seen = []
    for _round in range(2):
        for tenant in tenants:
            for task, args in (
                (tenant_migrate_task, [tenant.id]),
                (tenant_crons_task, [tenant.id]),
                (tenant_backup_task, [tenant.id, f"k{tenant.id}-{_round}"]),
            ):
                result = task.apply(args=args).get()
                assert result["error"] is None, result
                assert result["tenant_id"] == tenant.id and result["tenant"] == tenant.name
                if "context" in result:
                    seen.append((tenant.id, result["context"]))
                assert tenant_current_or_none() is None  # reset after every task
    assert seen and all(own == context for own, context in seen)
    for tenant in tenants:
        runs = TenantMigrationRun.objects.filter(tenant_id=tenant.id).order_by("id")
        assert [(r.status, len(r.applied)) for r in runs] == [("ok", migrations_of(tenant)), ("ok", 0)]


def test_a_task_started_inside_another_tenants_context_refuses_to_run(make_tenant):
    mine, other = make_tenant(), make_tenant()
    with use_tenant(other):
        outcome = tenant_backup_task.apply(args=[mine.id, "leak"])
        assert tenant_current_or_none() == other
    assert outcome.failed()
    assert f"found tenant #{other.id} still current; refused" in str(outcome.result)
    assert backup_list(database=mine.name) == []


def test_a_backup_delivered_twice_under_one_key_is_taken_once(make_tenant):
    tenant = make_tenant()
    first = tenant_backup_task.apply(args=[tenant.id, "same-key"]).get()
    second = tenant_backup_task.apply(args=[tenant.id, "same-key"]).get()
    assert (first["deduplicated"], second["deduplicated"]) == (False, True)
    assert first["path"] == second["path"]
    assert [b.path.name for b in backup_list(database=tenant.name)] == [first["path"].rsplit("/", 1)[1]]


def test_an_upgrade_task_moves_the_tenant_once_and_a_second_delivery_changes_nothing(make_tenant):
    tenant = make_tenant(modules=[("test", 1)])
    first = tenant_upgrade_task.apply(args=[tenant.id, "test", 2]).get()
    again = tenant_upgrade_task.apply(args=[tenant.id, "test", 2]).get()
    assert first["error"] is None and first["switched"] and first["from_version"] == 1
    assert again["error"] is None and not again["switched"] and again["from_version"] == 2


def test_a_task_for_a_deleted_tenant_reports_it_without_retrying(make_tenant):
    result = tenant_migrate_task.apply(args=[987654321]).get()
    assert result["error"] == "No tenant with id 987654321." and result["tries"] == 1


@override_settings(CELERY_BROKER_URL="")
def test_without_a_broker_the_commands_run_in_process_and_no_wait_is_refused(make_tenant, capsys):
    tenant = make_tenant(provision=False)
    call_command("migrate_tenants")
    assert f"{tenant.name}: OK, {migrations_of(tenant)} applied" in capsys.readouterr().out
    for command in (["migrate_tenants"], ["backup", "--all-tenants"], ["runcrons"]):
        with pytest.raises(CommandError, match=r"--no-wait needs Celery workers: set CELERY_BROKER_URL"):
            call_command(*command, "--no-wait")


def test_beat_starts_the_daily_scheduled_jobs_at_cron_time(settings):
    from m3saas.celery import CRONS_DISPATCH, app, cron_time_parse

    schedule = app.conf.beat_schedule["daily-scheduled-jobs"]
    assert schedule["task"] == CRONS_DISPATCH
    assert (schedule["schedule"].hour, schedule["schedule"].minute) == ({3}, {0})
    assert cron_time_parse("23:59") == (23, 59)
    with pytest.raises(ValueError, match=r"CRON_TIME must be HH:MM, not '24:00'"):
        cron_time_parse("24:00")
    with pytest.raises(ValueError, match=r"CRON_TIME must be HH:MM, not '²:00'"):
        cron_time_parse("²:00")  # "²".isdigit() is true, int("²") a ValueError of its own


def test_the_daily_dispatch_runs_the_master_jobs_then_each_tenants_jobs(make_tenant, settings):
    from m3saas.bookkeeping.models import JobRun
    from m3saas.celery import app
    from tenants.tasks import crons_dispatch_task

    settings.BACKUP_REPEAT = "off"  # an SQLite backup of the master cannot be taken inside the test's transaction
    tenants = [make_tenant() for _ in range(2)]
    app.conf.task_always_eager = True  # the tenants' tasks run here, as a worker would run them
    try:
        sent = crons_dispatch_task.apply().get()
    finally:
        app.conf.task_always_eager = False
    assert sent["tenants"] >= 2 and sent["master_failed"] == []
    for tenant in tenants:
        jobs = set(JobRun.objects.using(tenant.alias).filter(last_status="ok").values_list("job", flat=True))
        assert {"test_daily_notification", "test_weekly_offer"} <= jobs


def test_a_tenant_database_that_stays_unreachable_is_tried_again_then_recorded_as_failed(make_tenant, settings):
    if settings.M3SAAS_CONFIG.is_mysql:
        pytest.skip("simulated on SQLite (a directory where the file is); on real workers: test_workers.py")
    from pathlib import Path

    settings.TASK_MAX_RETRIES = 2
    tenant = make_tenant()
    database = Path(connections.settings[tenant.alias]["NAME"])
    aside = database.with_suffix(".away")
    database.rename(aside)
    database.mkdir()  # SQLite: "unable to open database file", as when the server is gone
    try:
        outcome = tenant_backup_task.apply(args=[tenant.id, "down"])
    finally:
        database.rmdir()
        aside.rename(database)
    result = outcome.get()
    assert result["tries"] == 3  # the first try and two more, the last one recording its failure
    assert "unable to open database file" in result["error"]
    assert backup_list(database=tenant.name) == []
