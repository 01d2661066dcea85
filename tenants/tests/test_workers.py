"""Tenant work on real Celery workers over a real broker (Redis; RabbitMQ for the killed worker).

Each test runs `manage.py` and `celery -A m3saas.celery worker` as operators do, in a fresh
embedded default (SQLite master and tenants in a throw-away VAR_DIR that every process opens),
on a queue of its own so that parallel test runs never take each other's tasks. They run in
the SQLite pass only: the workers' database is that throw-away SQLite site, whatever the pass.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from django.conf import settings

ROOT = Path(__file__).resolve().parents[2]
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}
# Its own Redis database: other suites use db 0 as their cache.
REDIS = ("127.0.0.1", 6379, "redis://127.0.0.1:6379/3")
RABBITMQ = ("127.0.0.1", 5672, "amqp://guest:guest@127.0.0.1:5672//")

# What a new tenant of module test v1 gets.
APPLIED = ["bookkeeping.0001_initial", "bookkeeping.0002_idempotencykey", "test_v1.0001_initial"]
CREATE_TENANTS = """
from subscriptions.models import Module, Subscription
from tenants.selectors import tenant_info_fresh
from tenants.services import tenant_create, tenant_migrate
module = Module.objects.get_or_create(name="test")[0]
for name in sys.argv[1:]:
    tenant = tenant_create(name=name, user=name, password="pw", provision=False)
    Subscription.objects.create(tenant=tenant, module=module, version=1)
    if PROVISION:
        tenant_migrate(tenant=tenant_info_fresh(tenant_id=tenant.id))
"""


@pytest.fixture(autouse=True)
def _sqlite_pass_only(request: pytest.FixtureRequest) -> None:
    if settings.M3SAAS_CONFIG.is_mysql and request.node.get_closest_marker("mariadb") is None:
        pytest.skip("worker tests run in the SQLite pass: their workers use a throw-away embedded default")


def _broker(host: str, port: int, url: str, name: str) -> str:
    try:
        with socket.create_connection((host, port), timeout=2):
            return url
    except OSError:
        message = f"{name} is not reachable at {host}:{port}: start it to run the worker tests"
        if IN_CI:
            pytest.fail(message + " (CI=true: not skipped)")
        pytest.skip(message)


class Site:
    """A throw-away installation: its VAR_DIR, its environment, its queue, its workers."""

    def __init__(self, var_dir: Path, broker: str, config: Path | None = None) -> None:
        self.var_dir = var_dir
        self.queue = f"m3saas-test-{uuid.uuid4().hex[:10]}"
        self.env = {k: v for k, v in os.environ.items() if k not in {"CONFIG_FILE", "DJANGO_SETTINGS_MODULE"}}
        self.env.update(
            VAR_DIR=str(var_dir),
            SECRET_KEY="workers-test",
            LOG_FORMAT="json",
            LOG_LEVEL="INFO",
            CELERY_BROKER_URL=broker,
            CELERY_QUEUE=self.queue,
            TASK_RETRY_DELAY="0.4",
            TASK_MAX_RETRIES="6",
        )
        if config is not None:
            self.env["CONFIG_FILE"] = str(config)
        if broker.startswith("redis"):
            self.env["CELERY_RESULT_BACKEND"] = broker
        self.workers: list[subprocess.Popen[bytes]] = []

    def manage(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [sys.executable, "manage.py", *args], cwd=ROOT, env=self.env, capture_output=True, text=True, timeout=120
        )
        if check:
            assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
        return done

    def manage_background(self, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [sys.executable, "manage.py", *args],
            cwd=ROOT,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def tenants_create(self, count: int, *, provision: bool = False) -> list[str]:
        names = [f"w{uuid.uuid4().hex[:10]}" for _ in range(count)]
        self.manage(
            "shell", "-c", CREATE_TENANTS.replace("sys.argv[1:]", repr(names)).replace("PROVISION", str(provision))
        )
        return names

    def worker_start(self, name: str) -> Path:
        log = self.var_dir / f"{name}.log"
        with log.open("wb") as out:
            self.workers.append(
                subprocess.Popen(
                    [
                        *(sys.executable, "-m", "celery", "-A", "m3saas.celery", "worker", "--concurrency=1"),
                        *(f"--hostname={name}-{self.queue}@%h", "--without-gossip", "--without-mingle", "-l", "INFO"),
                    ],
                    cwd=ROOT,
                    env=self.env,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,  # its pool processes can be killed with it
                )
            )
        return log

    def workers_ready(self, *logs: Path) -> None:
        deadline = time.monotonic() + 40
        while not all("ready." in log.read_text(errors="replace") for log in logs):
            assert time.monotonic() < deadline, "\n".join(log.read_text()[-2000:] for log in logs)
            time.sleep(0.1)

    def stop(self) -> None:
        for worker in self.workers:
            if worker.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(worker.pid, signal.SIGTERM)
        for worker in self.workers:
            try:
                worker.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(worker.pid, signal.SIGKILL)
                worker.wait()

    def master(self, sql: str, *params: object) -> list[tuple[object, ...]]:
        with contextlib.closing(sqlite3.connect(self.var_dir / "master.sqlite3", timeout=20)) as db:
            rows = db.execute(sql, params).fetchall()
            db.commit()
            return rows

    def runs(self, name: str) -> list[tuple[str, list[str]]]:
        rows = self.master(
            "SELECT r.status, r.applied FROM tenants_tenantmigrationrun r JOIN tenants_tenant t ON t.id = r.tenant_id "
            "WHERE t.name = ? ORDER BY r.id",
            name,
        )
        return [(str(status), json.loads(str(applied))) for status, applied in rows]


def _records(log: Path) -> list[dict[str, object]]:
    found = []
    for line in log.read_text(errors="replace").splitlines():
        with contextlib.suppress(ValueError):
            record = json.loads(line)
            if isinstance(record, dict):
                found.append(record)
    return found


def _until(condition: Callable[[], object], what: str, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


@pytest.fixture(scope="module")
def redis_site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Site, list[Path]]]:
    """Redis, a migrated master and two workers (one process each) on the site's queue."""
    site = Site(tmp_path_factory.mktemp("workers"), _broker(*REDIS, "Redis"))
    try:
        logs = [site.worker_start("one"), site.worker_start("two")]
        site.manage("migrate", "-v0")
        site.workers_ready(*logs)
        yield site, logs
    finally:
        site.stop()


def _crons_and_backups_see_only_their_own_tenant(site: Site, logs: list[Path], names: list[str]) -> None:
    """Interleaved tasks of many tenants on each worker: every one runs in its own tenant only.

    (Its log lines say so: the tenant filter reads the context when the line is written.)
    """
    crons = site.manage("runcrons")  # each tenant's backup, then its module jobs (backup --all-tenants: below)
    assert crons.stdout.splitlines()[-1].endswith(", 0 failure(s).")
    assert "master: platform:database_backup ok" in crons.stdout  # the master's jobs: in the command
    ids = {str(name): tenant_id for name, tenant_id in site.master("SELECT name, id FROM tenants_tenant")}
    for name in names:
        assert f"{name}: platform:database_backup ok" in crons.stdout
        assert f"{name}: test_v1:test_daily_notification ok" in crons.stdout
    checked = 0
    for log in logs:
        for record in _records(log):
            # Every line a job or a task writes for a tenant carries that tenant, none another's.
            found = re.search(r"(?:ran for|of tenant|backup of) (w[0-9a-f]{10})\b", str(record["message"]))
            if found and found[1] in ids:
                assert record["tenant"] == ids[found[1]], record
                checked += 1
            done = re.search(r"succeeded in .*'context': (\d+).*'tenant_id': (\d+)", str(record["message"]))
            if done:
                assert done[1] == done[2], record
                checked += 1
    assert checked >= 4 * len(names)


def test_commands_fan_out_over_two_workers_with_the_same_summary_and_exit_code(redis_site):
    site, logs = redis_site
    names = site.tenants_create(4)
    done = site.manage("migrate_tenants")
    assert done.stdout.splitlines()[-1] == "4 of 4 tenants migrated."
    assert all(re.search(rf"\] {name}: OK, {len(APPLIED)} applied \(", done.stdout) for name in names)
    per_worker = [sum(1 for r in _records(log) if str(r["message"]).startswith("migration of tenant")) for log in logs]
    assert all(count >= 1 for count in per_worker), per_worker  # both workers took tenants
    _crons_and_backups_see_only_their_own_tenant(site, logs, names)
    # Again, with one tenant failing on its own: the same lines, summary and exit code as in-process.
    broken = site.var_dir / "tenants" / f"{names[0]}.sqlite3"
    good = broken.read_bytes()
    broken.write_bytes(b"not a database" * 100)  # a failure of the tenant's own, not an outage
    try:
        failed = site.manage("migrate_tenants", check=False)
    finally:
        broken.write_bytes(good)
    assert failed.returncode == 1
    assert f"{names[0]}: FAILED: " in failed.stderr
    assert all(f"{name}: OK, up to date" in failed.stdout for name in names[1:])
    assert "3 of 4 tenants migrated." in failed.stdout
    assert all(site.runs(name) == [("ok", APPLIED), ("ok", [])] for name in names[1:])
    assert "rerun them with: manage.py migrate_tenants --failed" in failed.stderr


def test_no_wait_returns_at_once_and_says_how_to_follow(redis_site):
    site, _logs = redis_site
    tenants = len(site.master("SELECT id FROM tenants_tenant"))

    def runs() -> int:
        return len(site.master("SELECT id FROM tenants_tenantmigrationrun WHERE status = 'ok'"))

    before = runs()
    done = site.manage("migrate_tenants", "--no-wait")
    assert f"Sent {tenants} task(s) to queue '{site.queue}'" in done.stdout and "not waiting" in done.stdout
    assert "migration_report" in done.stdout
    assert "tenants migrated" not in done.stdout
    _until(lambda: runs() == before + tenants, "the sent tasks to run")


SEND_TWICE = """
from tenants.tasks import tenant_backup_task, tenant_migrate_task
from tenants.models import Tenant
tenant = Tenant.objects.get(name={name!r})
for _ in range(2):
    tenant_migrate_task.apply_async(args=[tenant.id], task_id="twice-migrate-{name}")
    tenant_backup_task.apply_async(args=[tenant.id], task_id="twice-backup-{name}")
"""


def test_a_task_delivered_twice_does_the_work_once(redis_site):
    site, logs = redis_site
    (name,) = site.tenants_create(1)
    site.manage("shell", "-c", SEND_TWICE.format(name=name))
    _until(lambda: len([s for s, _ in site.runs(name) if s == "ok"]) == 2, "both migration deliveries")
    runs = site.runs(name)
    assert sorted(len(applied) for _, applied in runs) == [0, len(APPLIED)], runs  # the second applied nothing

    def backups_handled() -> int:
        key = f"twice-backup-{name}"
        return sum(1 for log in logs for r in _records(log) if f"[{key}] succeeded" in str(r["message"]))

    _until(lambda: backups_handled() == 2, "both backup deliveries")
    assert len(list((site.var_dir / "backups" / name).glob(f"{name}-*.sqlite3.gz"))) == 1


def test_a_database_outage_during_a_task_is_retried_with_backoff(redis_site):
    site, logs = redis_site
    (name,) = site.tenants_create(1, provision=True)
    database = site.var_dir / "tenants" / f"{name}.sqlite3"
    aside = database.with_suffix(".away")
    database.rename(aside)
    database.mkdir()  # the file cannot be opened: SQLite's "unable to open database file"
    command = site.manage_background("backup", "--all-tenants")

    def retries() -> list[float]:
        pattern = re.compile(rf"backup of tenant #\d+: database unavailable, retrying in ([\d.]+)s: .*{name}")
        found = [
            (str(r["time"]), m[1]) for log in logs for r in _records(log) if (m := pattern.search(str(r["message"])))
        ]
        return [float(delay) for _, delay in sorted(found)]  # in time order, whichever worker tried

    try:
        _until(lambda: len(retries()) >= 2, "two retries")
    finally:
        database.rmdir()
        aside.rename(database)
    out, err = command.communicate(timeout=60)
    assert command.returncode == 0, err
    assert re.search(rf"^{name}: .*\.sqlite3\.gz$", out, re.M)
    delays = retries()
    assert delays[:2] == [0.4, 0.8], delays  # backoff: each wait twice the one before
    assert len(list((site.var_dir / "backups" / name).glob(f"{name}-*.sqlite3.gz"))) == 1


def test_a_worker_killed_mid_task_loses_nothing_and_the_task_is_done_once(tmp_path):
    site = Site(tmp_path, _broker(*RABBITMQ, "RabbitMQ"))
    try:
        logs = [site.worker_start("one"), site.worker_start("two")]
        site.manage("migrate", "-v0")
        (name,) = site.tenants_create(1)
        site.workers_ready(*logs)
        lock = site.var_dir / "tenants" / f"{name}.schema.lock"
        lock.parent.mkdir(parents=True, exist_ok=True)
        with lock.open("a") as held:
            # The tenant's schema lock, held here: the worker's migration waits inside its task.
            fcntl.flock(held, fcntl.LOCK_EX)
            command = site.manage_background("migrate_tenants")
            _until(lambda: site.runs(name) == [("running", [])], "the task to start")
            # The migration takes the tenant's schema lock before it touches the database: it waits.
            time.sleep(0.5)
            took = next(i for i, log in enumerate(logs) if f"migration of tenant {name}" in log.read_text())
            os.killpg(site.workers[took].pid, signal.SIGKILL)  # the worker and its pool process
            site.workers[took].wait()
            fcntl.flock(held, fcntl.LOCK_UN)
        heir = logs[1 - took]
        out, err = command.communicate(timeout=60)
        assert command.returncode == 0, out + err
        assert f"{name}: OK, {len(APPLIED)} applied" in out and out.splitlines()[-1] == "1 of 1 tenants migrated."
        assert f"migration of tenant {name}" in heir.read_text()  # redelivered to the other worker
        runs = site.runs(name)
        # The killed try's run is closed as interrupted by the redelivered one, which applied each
        # migration once.
        assert runs == [("failed", []), ("ok", APPLIED)], runs
        with contextlib.closing(sqlite3.connect(site.var_dir / "tenants" / f"{name}.sqlite3")) as db:
            applied = db.execute("SELECT app || '.' || name FROM django_migrations").fetchall()
        assert sorted(row[0] for row in applied) == APPLIED
    finally:
        site.stop()


@pytest.mark.mariadb
def test_on_mariadb_migrate_tenants_fans_out_over_two_workers(tmp_path):
    """The same fan-out with the master and the tenants on MariaDB: a master of the test's own."""
    import MySQLdb

    db = settings.M3SAAS_CONFIG.database
    master = f"m3work_{uuid.uuid4().hex[:10]}"
    config = tmp_path / "config.json"
    server = {"host": db.host, "port": db.port, "user": db.user, "password": db.password}
    config.write_text(json.dumps({"dbSalt": "workers", "tenants": {"database": {**server, "database": master}}}))
    site = Site(tmp_path, _broker(*REDIS, "Redis"), config=config)
    root = MySQLdb.connect(**{("passwd" if k == "password" else k): v for k, v in server.items()})
    names: list[str] = []
    try:
        with root.cursor() as cur:
            cur.execute(f"CREATE DATABASE `{master}`")
        logs = [site.worker_start("one"), site.worker_start("two")]
        site.manage("migrate", "-v0")
        names = site.tenants_create(3)
        site.workers_ready(*logs)
        done = site.manage("migrate_tenants")
        assert done.stdout.splitlines()[-1] == "3 of 3 tenants migrated."
        assert all(f"{name}: OK, {len(APPLIED)} applied" in done.stdout for name in names)
        again = site.manage("migrate_tenants")
        assert all(f"{name}: OK, up to date" in again.stdout for name in names)
    finally:
        site.stop()
        with root.cursor() as cur:
            for name in [*names, master]:
                cur.execute(f"DROP DATABASE IF EXISTS `{name}`")
            for name in names:
                cur.execute("DROP USER IF EXISTS %s@'%%'", (name,))
        root.close()


OPERATOR_UPGRADE = """
import json, time, uuid
from django.contrib.auth.models import User
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient
from tenants.models import Tenant
user = User.objects.create_user(f"op_{{uuid.uuid4().hex[:8]}}", is_staff=True)
client = APIClient()
client.credentials(HTTP_AUTHORIZATION="Token " + Token.objects.create(user=user).key)
tenant = Tenant.objects.get(name={name!r})
accepted = client.patch(f"/operator/v1/tenants/{{tenant.id}}/subscriptions/test", {{"version": 2}}, format="json")
assert accepted.status_code == 202, accepted.content
deadline = time.monotonic() + 60
while True:
    job = client.get(accepted["Location"]).json()
    if job["status"] in ("done", "failed") or time.monotonic() > deadline:
        break
    time.sleep(0.2)
print(json.dumps(job))
"""


def test_an_operator_upgrade_over_http_runs_on_a_worker_and_is_polled_until_done(redis_site):
    """With a broker, the 202's job is a Celery task: a worker runs it, the poll reads its outcome."""
    site, logs = redis_site
    (name,) = site.tenants_create(1, provision=True)
    done = site.manage("shell", "-c", OPERATOR_UPGRADE.format(name=name))
    job = json.loads(done.stdout.strip().splitlines()[-1])
    assert job["status"] == "done", job
    assert job["result"]["switched"] and (job["result"]["from_version"], job["result"]["to_version"]) == (1, 2)
    ran = [r for log in logs for r in _records(log) if f"job:{job['id']}" in str(r["message"])]
    assert any("succeeded" in str(r["message"]) for r in ran), "no worker ran the job's task"
    rows = site.master(
        "SELECT s.version FROM subscriptions_subscription s JOIN tenants_tenant t ON t.id = s.tenant_id "
        "WHERE t.name = ?",
        name,
    )
    assert rows == [(2,)]


def test_a_waiting_command_with_no_worker_stops_at_its_timeout_naming_the_queue(tmp_path):
    """No worker consumes the queue: `--wait-timeout` ends the wait with one line, exit 1; the tasks stay queued."""
    import redis

    site = Site(tmp_path, _broker(*REDIS, "Redis"))
    try:
        site.manage("migrate", "-v0")
        site.tenants_create(2)
        started = time.monotonic()
        done = site.manage("migrate_tenants", "--wait-timeout", "1.5", check=False)
        assert time.monotonic() - started < 60
        assert done.returncode == 1, done.stdout + done.stderr
        error = done.stderr.strip().splitlines()
        assert len(error) == 1 and "Traceback" not in done.stderr, done.stderr
        assert f"No task finished in 1.5 s on queue '{site.queue}'" in error[0]
        assert "2 of 2 still pending" in error[0] and "make worker" in error[0]
        assert redis.Redis.from_url(REDIS[2]).llen(site.queue) == 2  # still there for a worker to come
        refused = site.manage("backup", "--all-tenants", "--wait-timeout", "0", check=False)
        assert refused.returncode == 2 and "--wait-timeout: invalid _seconds value" not in refused.stderr
        assert "seconds, more than 0" in refused.stderr
    finally:
        redis.Redis.from_url(REDIS[2]).delete(site.queue)
