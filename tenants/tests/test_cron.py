"""Scheduled jobs: the repeat rules, the runner per tenant, failures, concurrent runners, the example job."""

from __future__ import annotations

import io
import queue
import threading
import time
import uuid
from dataclasses import replace
from datetime import date, datetime, timedelta

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connections
from django.utils import timezone

from m3saas.bookkeeping.models import JobRun
from m3saas.conf import BackupLimits
from m3saas.cron import Job
from modules.test.v1 import cron as test_v1_cron
from modules.test.v1.models import Animal
from tenants.backup_files import backup_list
from tenants.backups import backup_target_master
from tenants.cron import crons_run, tenant_jobs_run

# --- the rules -----------------------------------------------------------------------------


def noop() -> None:
    return None


def run_days(job: Job, start: str, end: str) -> list[str]:
    """The days on which a daily `runcrons` from `start` to `end` (inclusive) runs `job`."""
    day, stop, last, ran = date.fromisoformat(start), date.fromisoformat(end), None, []
    while day <= stop:
        if job.is_due(today=day, last_run=last):
            ran.append(day.isoformat())
            last = day
        day += timedelta(days=1)
    return ran


def test_daily_job_runs_every_day():
    assert run_days(Job("j", noop), "2031-01-30", "2031-02-02") == [
        "2031-01-30",
        "2031-01-31",
        "2031-02-01",
        "2031-02-02",
    ]


def test_daily_job_with_interval_runs_every_nth_day():
    assert run_days(Job("j", noop, interval=3), "2031-01-01", "2031-01-10") == [
        "2031-01-01",
        "2031-01-04",
        "2031-01-07",
        "2031-01-10",
    ]


def test_a_job_runs_at_most_once_a_day():
    job = Job("j", noop)
    assert job.is_due(today=date(2031, 1, 1), last_run=None)
    assert not job.is_due(today=date(2031, 1, 1), last_run=date(2031, 1, 1))


def test_weekly_job_without_weekday_runs_every_seven_days_from_its_first_run():
    assert run_days(Job("j", noop, repeat="week"), "2031-01-01", "2031-01-20") == [
        "2031-01-01",
        "2031-01-08",
        "2031-01-15",
    ]


def test_weekly_job_on_a_weekday_runs_on_that_weekday_every_interval_weeks():
    # weekday 1 = Monday (0 = Sunday, as in the original); 2031-01-06 is a Monday.
    job = Job("j", noop, repeat="week", interval=2, weekday=1)
    assert run_days(job, "2031-01-01", "2031-02-10") == ["2031-01-06", "2031-01-20", "2031-02-03"]


def test_weekday_zero_is_sunday():
    assert run_days(Job("j", noop, repeat="week", weekday=0), "2031-01-01", "2031-01-14") == [
        "2031-01-05",
        "2031-01-12",
    ]


def test_a_missed_weekday_waits_for_the_next_one():
    job = Job("j", noop, repeat="week", weekday=1)
    # Ran Monday 2031-01-06; the runner did not run on Monday the 13th.
    assert not job.is_due(today=date(2031, 1, 14), last_run=date(2031, 1, 6))
    assert job.is_due(today=date(2031, 1, 20), last_run=date(2031, 1, 6))


def test_monthly_job_on_a_day_runs_on_that_day_every_interval_months():
    job = Job("j", noop, repeat="month", interval=2, day=15)
    assert run_days(job, "2031-01-01", "2031-07-31") == ["2031-01-15", "2031-03-15", "2031-05-15", "2031-07-15"]


def test_monthly_job_on_the_31st_skips_shorter_months():
    job = Job("j", noop, repeat="month", day=31)
    assert run_days(job, "2031-01-01", "2031-05-31") == ["2031-01-31", "2031-03-31", "2031-05-31"]


def test_monthly_job_without_day_runs_a_month_after_its_last_run_even_in_february():
    assert run_days(Job("j", noop, repeat="month"), "2032-01-31", "2032-03-31") == [
        "2032-01-31",
        "2032-02-29",
        "2032-03-29",
    ]


def test_yearly_job_on_a_date_runs_on_that_date():
    job = Job("j", noop, repeat="year", month=3, day=10)
    assert run_days(job, "2031-01-01", "2033-12-31") == ["2031-03-10", "2032-03-10", "2033-03-10"]


def test_yearly_job_with_a_month_only_runs_on_its_first_day():
    assert run_days(Job("j", noop, repeat="year", month=6), "2031-01-01", "2032-12-31") == [
        "2031-06-01",
        "2032-06-01",
    ]


def test_yearly_job_with_interval_skips_years():
    assert run_days(Job("j", noop, repeat="year", interval=2), "2031-05-05", "2035-12-31") == [
        "2031-05-05",
        "2033-05-05",
        "2035-05-05",
    ]


@pytest.mark.parametrize(
    "options",
    [
        {"repeat": "hour"},
        {"interval": 0},
        {"repeat": "day", "weekday": 1},
        {"repeat": "week", "weekday": 7},
        {"repeat": "week", "day": 3},
        {"repeat": "month", "day": 32},
        {"repeat": "month", "month": 2},
        {"repeat": "year", "day": 3},
    ],
)
def test_invalid_declarations_are_refused(options):
    with pytest.raises(ValueError):
        Job("j", noop, **options)


# --- the runner ----------------------------------------------------------------------------


def at(day: str) -> datetime:
    return timezone.make_aware(datetime.fromisoformat(f"{day}T03:00:00"))


@pytest.fixture
def jobs(monkeypatch, settings, tmp_path):
    """Replace the `test` v1 module's jobs for the test; backups go to a temporary folder, off."""
    settings.BACKUP_DIR = tmp_path / "backups"
    settings.BACKUP_REPEAT = "off"

    def use(*declared: Job) -> None:
        monkeypatch.setattr(test_v1_cron, "JOBS", list(declared))

    return use


def add_animal(name: str):
    def job() -> None:
        Animal.objects.create(name=name)  # routed by the tenant context of the runner

    return job


def run(tenant, day: str, **kwargs):
    return tenant_jobs_run(tenant=replace(tenant, backups=BackupLimits(per_day=0, max=0)), now=at(day), **kwargs)


@pytest.mark.django_db
def test_jobs_run_in_each_tenants_own_database(make_tenant, jobs):
    first, second, other = make_tenant(), make_tenant(), make_tenant(modules=[("test", 2)])
    jobs(Job("add", add_animal("daily")))

    report = crons_run(now=at("2031-01-01"), tenant_names=[first.name, second.name, other.name])

    assert report.ok
    assert list(Animal.objects.using(first.alias).values_list("name", flat=True)) == ["daily"]
    assert list(Animal.objects.using(second.alias).values_list("name", flat=True)) == ["daily"]
    assert JobRun.objects.using(first.alias).get(module="test_v1", job="add").last_status == "ok"
    assert not JobRun.objects.using(other.alias).filter(module="test_v1").exists()
    assert not JobRun.objects.using("default").filter(module="test_v1").exists()


@pytest.mark.django_db
def test_jobs_run_on_their_days_only(make_tenant, jobs):
    tenant = make_tenant()
    jobs(Job("every-2-days", add_animal("x"), interval=2), Job("weekly", add_animal("w"), repeat="week"))
    for day in ("2031-01-01", "2031-01-02", "2031-01-03", "2031-01-04", "2031-01-05", "2031-01-08"):
        run(tenant, day)
    names = list(Animal.objects.using(tenant.alias).values_list("name", flat=True))
    assert names.count("x") == 4  # 1st, 3rd, 5th, 8th (7th skipped: no run that day)
    assert names.count("w") == 2  # 1st and 8th
    last = JobRun.objects.using(tenant.alias).get(job="every-2-days").last_run_at
    assert timezone.localdate(last) == date(2031, 1, 8)


@pytest.mark.django_db
def test_a_failing_job_is_isolated_and_tried_again(make_tenant, jobs):
    first, second = make_tenant(), make_tenant()

    def broken() -> None:
        raise RuntimeError("the job broke")

    jobs(Job("broken", broken), Job("fine", add_animal("fine")))

    report = crons_run(now=at("2031-01-01"), tenant_names=[first.name, second.name])

    assert not report.ok
    failed = [(o.database, o.job) for o in report.outcomes if o.status == "failed"]
    assert failed == [(first.name, "broken"), (second.name, "broken")]
    for tenant in (first, second):
        assert list(Animal.objects.using(tenant.alias).values_list("name", flat=True)) == ["fine"]
        row = JobRun.objects.using(tenant.alias).get(job="broken")
        assert (row.last_status, row.last_run_at) == ("failed", None)
        assert "RuntimeError: the job broke" in row.last_error
    outcomes = run(first, "2031-01-01")
    assert {o.job: o.status for o in outcomes} == {"broken": "failed", "fine": "not_due"}


@pytest.mark.django_db
def test_a_failing_tenant_does_not_stop_the_next(make_tenant, jobs):
    broken = make_tenant(provision=False)  # no database: every query fails
    fine = make_tenant()
    jobs(Job("add", add_animal("ran")))

    report = crons_run(now=at("2031-01-01"), tenant_names=[broken.name, fine.name])

    assert list(report.failed_databases) == [broken.name]
    assert list(Animal.objects.using(fine.alias).values_list("name", flat=True)) == ["ran"]


@pytest.mark.django_db
def test_runcrons_command_fails_when_a_job_failed(make_tenant, jobs):
    tenant = make_tenant()

    def broken() -> None:
        raise RuntimeError("nope")

    jobs(Job("broken", broken))
    err = io.StringIO()
    with pytest.raises(CommandError):
        call_command("runcrons", "--now", "2031-01-01", "--tenant", tenant.name, stdout=io.StringIO(), stderr=err)
    assert f"{tenant.name}: test_v1:broken failed: RuntimeError: nope" in err.getvalue()


@pytest.mark.django_db
def test_tenant_backup_is_a_monthly_job_by_default(make_tenant, jobs, settings):
    settings.BACKUP_REPEAT = "month"
    tenant = make_tenant()
    jobs()
    for day in ("2031-01-01", "2031-01-02", "2031-01-31", "2031-02-01", "2031-02-15"):
        run(tenant, day)
    assert [b.day.isoformat() for b in backup_list(database=tenant.name)] == ["2031-01-01", "2031-02-01"]


@pytest.mark.django_db
def test_two_concurrent_runners_run_each_due_job_once(make_tenant, jobs, settings):
    settings.BACKUP_REPEAT = "day"
    tenant = make_tenant()

    def slow(name: str):
        def job() -> None:
            Animal.objects.create(name=name)
            time.sleep(0.2)  # widens the window in which the other runners try the same job

        return job

    jobs(Job("a", slow("a")), Job("b", slow("b")), Job("c", slow("c")))
    runners = 4
    barrier = threading.Barrier(runners)
    results: queue.Queue = queue.Queue()

    def runner() -> None:
        try:
            barrier.wait()
            results.put(run(tenant, "2031-01-01"))
        except Exception as exc:
            results.put(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=runner) for _ in range(runners)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    outcomes = [results.get_nowait() for _ in range(runners)]
    assert not [o for o in outcomes if isinstance(o, Exception)]
    ran = sorted(o.job for per_runner in outcomes for o in per_runner if o.status == "ok")
    assert ran == ["a", "b", "c", "database_backup"]
    assert sorted(Animal.objects.using(tenant.alias).values_list("name", flat=True)) == ["a", "b", "c"]
    assert len(backup_list(database=tenant.name)) == 1


@pytest.mark.django_db(transaction=True)
def test_runcrons_backs_up_the_master_then_each_tenant(make_tenant, settings, tmp_path):
    settings.BACKUP_DIR = tmp_path / "backups"
    tenant = make_tenant()
    out = io.StringIO()

    call_command("runcrons", "--now", "2031-01-01", stdout=out)

    lines = out.getvalue().splitlines()
    assert lines.index("master: platform:database_backup ok") < lines.index(
        f"{tenant.name}: platform:database_backup ok"
    )
    assert len(backup_list(database=backup_target_master().database)) == 1
    assert len(backup_list(database=tenant.name)) == 1
    assert JobRun.objects.using("default").get(module="", job="database_backup").last_status == "ok"
    assert JobRun.objects.using(tenant.alias).get(module="", job="database_backup").last_status == "ok"


# --- the example job -----------------------------------------------------------------------


@pytest.mark.django_db
def test_example_daily_job_is_skipped_without_mqtt(make_tenant, settings, tmp_path):
    from m3saas.mqtt.client import MQTTClient

    settings.BACKUP_REPEAT = "off"
    tenant = make_tenant()
    with MQTTClient.override(None):
        outcomes = run(tenant, "2031-01-01")
    assert {o.job: o.status for o in outcomes} == {"test_daily_notification": "ok", "test_weekly_offer": "ok"}


@pytest.mark.mqtt
@pytest.mark.django_db
def test_example_daily_job_publishes_to_the_tenants_topic(make_tenant, settings, mqtt_broker):
    import paho.mqtt.client as paho

    from m3saas.conf import MQTTConfig
    from m3saas.mqtt.client import MQTTClient

    settings.BACKUP_REPEAT = "off"
    host, port = mqtt_broker
    tenant = make_tenant(name=f"t{uuid.uuid4().hex[:12]}")
    received: queue.Queue = queue.Queue()
    subscribed = threading.Event()
    subscriber = paho.Client(callback_api_version=paho.CallbackAPIVersion.VERSION2)
    subscriber.on_connect = lambda c, u, f, rc, p: c.subscribe(f"{tenant.name}/notifications", qos=1)
    subscriber.on_subscribe = lambda c, u, mid, rcs, p: subscribed.set()
    subscriber.on_message = lambda c, u, message: received.put((message.topic, message.payload))
    subscriber.connect(host, port)
    subscriber.loop_start()
    try:
        assert subscribed.wait(20)
        with MQTTClient.override(MQTTConfig(host=host, port=port, username=None, password=None)):
            run(tenant, "2031-01-01")
            messages = {received.get(timeout=20), received.get(timeout=20)}
            run(tenant, "2031-01-02")  # daily again, weekly not
            messages.add(received.get(timeout=20))
    finally:
        subscriber.loop_stop()
        subscriber.disconnect()
    topic = f"{tenant.name}/notifications"
    assert messages == {(topic, b"Here is your daily notification!"), (topic, b"Don't miss our offer!")}
