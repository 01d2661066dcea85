"""The servers under test: the bench config, the master and the tenants' rows, gunicorn, and the teardown.

Everything created is named `m3bench<run id>_…` and dropped by `cleanup` (or `leftovers_sweep`
after a killed run).
"""

from __future__ import annotations

import http.client
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet

from bench.common import BASE_DIR, GUNICORN_THREADS, GUNICORN_WORKERS, PLAIN_PATH, ROWS, BenchError, Params, log, timed
from bench.meter import meter_file_create
from bench.report import Report
from bench.system import MariaDBAdmin, child_pids, free_port, wait_until


@dataclass
class Run:
    params: Params
    prefix: str
    admin: MariaDBAdmin
    workdir: Path
    report: Report
    tenants: list[Any] = field(default_factory=list)  # TenantInfo, subscribed to test v1
    server: subprocess.Popen[bytes] | None = None
    port: int = 0

    @property
    def master(self) -> str:
        return f"{self.prefix}_master"

    @property
    def meter_file(self) -> Path:
        return self.workdir / "meter.bin"

    def tenant_name(self, index: int) -> str:
        return f"{self.prefix}_t{index:04d}"


def configure(run: Run, db: dict[str, Any], db2: dict[str, Any] | None = None) -> None:
    """Write the bench config and point this process (and the server it starts) at it; `db2`: a
    second database server in `tenants.servers` (figure 7)."""
    config = {
        "sub_directory": "",
        "dbSalt": secrets.token_hex(8),
        "tenantPasswordKeys": [Fernet.generate_key().decode()],
        "tenants": {
            "database": {
                "host": db["host"],
                "port": db["port"],
                "database": run.master,
                "user": db["user"],
                "password": db["password"],
            },
            "settings": {"engine": "InnoDB", "collation": "utf8mb4_unicode_ci"},
            "backup": {"perDay": 1, "max": 10},
        },
    }
    if db2 is not None:
        config["tenants"]["servers"] = {"db2": {key: db2[key] for key in ("host", "port", "user", "password")}}  # type: ignore[index]
    path = run.workdir / "config.json"
    path.write_text(json.dumps(config, indent=2))
    os.environ.update(
        {
            "CONFIG_FILE": str(path),
            "DJANGO_SETTINGS_MODULE": "bench.plain_settings",
            "SECRET_KEY": secrets.token_hex(32),
            "DEBUG": "false",
            "AUTO_MIGRATION": "false",
            "VAR_DIR": str(run.workdir / "var"),
            "LOG_LEVEL": os.environ.get("BENCH_LOG_LEVEL", "WARNING"),
            # Figures 1 (plain and tenant-routed) and 2 measure tenancy, so no key is needed there; a
            # key that is sent is still checked: figure 1's keyed route measures what the check costs.
            "MODULE_API_ACCESS": "public",
            # Limits are counted (their cost is measured), never reached.
            "TENANT_RATE_LIMIT": "999999999/min",
        }
    )


def master_prepare(run: Run) -> None:
    import django
    from django.conf import settings
    from django.core.management import call_command

    run.admin.database_create(run.master)
    django.setup()
    with timed("master database migrated"):
        call_command("migrate", verbosity=0, interactive=False)
    import gunicorn

    run.report.settings = {
        "gunicorn": gunicorn.__version__,
        "TENANT_MAX_OPEN_CONNECTIONS": settings.TENANT_MAX_OPEN_CONNECTIONS,
        "TENANT_CONN_MAX_AGE": settings.TENANT_CONN_MAX_AGE,
        "TENANT_CACHE_TIMEOUT": settings.TENANT_CACHE_TIMEOUT,
        "TENANT_MIGRATION_WORKERS": settings.TENANT_MIGRATION_WORKERS,
        "AUTO_MIGRATION": settings.AUTO_MIGRATION,
    }


def rows_seed(run: Run) -> None:
    """The same 10 animals (ids 1-10) in every tenant and in the master's plain table."""
    from django.db import connections, transaction

    from m3saas.tenancy.context import use_tenant
    from modules.test.v1.models import Animal

    def animals() -> list[Any]:
        return [Animal(id=i, name=f"animal {i}") for i in range(1, ROWS + 1)]

    def seed(info: Any) -> None:
        try:
            with use_tenant(info), transaction.atomic(using=info.alias):
                Animal.objects.all().delete()
                Animal.objects.bulk_create(animals())
        finally:
            connections[info.alias].close()

    with timed(f"{ROWS} animals seeded in each of {len(run.tenants)} tenants"), ThreadPoolExecutor(4) as pool:
        list(pool.map(seed, run.tenants))
    with connections["default"].schema_editor() as editor:
        editor.create_model(Animal)
    Animal.objects.using("default").bulk_create(animals())


# ---------------------------------------------------------------------------------------------
# Gunicorn


def server_start(run: Run) -> None:
    run.port = free_port()
    logfile = (run.workdir / "gunicorn.log").open("wb")
    cmd = [
        sys.executable,
        "-m",
        "gunicorn",
        "m3saas.wsgi:application",
        "--bind",
        f"127.0.0.1:{run.port}",
        "--worker-class",
        "gthread",
        "--workers",
        str(GUNICORN_WORKERS),
        "--threads",
        str(GUNICORN_THREADS),
        "--keep-alive",
        "5",
        "--timeout",
        "120",
        "--log-level",
        "warning",
        # Per-request CPU of each variant, for figure 1's interleaved load (`bench/meter.py`).
        "--config",
        "python:bench.meter",
    ]
    meter_file_create(run.meter_file)
    env = {**os.environ, "BENCH_METER_FILE": str(run.meter_file)}
    run.server = subprocess.Popen(
        cmd, cwd=BASE_DIR, env=env, stdout=logfile, stderr=logfile, preexec_fn=die_with_parent
    )

    def ready() -> bool:
        if run.server is not None and run.server.poll() is not None:
            raise BenchError(f"gunicorn exited with {run.server.returncode}: {server_log_tail(run)}")
        try:
            return http_get(run.port, PLAIN_PATH)[0] == 200 and len(child_pids(run.server.pid)) == GUNICORN_WORKERS  # type: ignore[union-attr]
        except OSError:
            return False

    if not wait_until(ready, timeout=60, interval=0.2):
        raise BenchError(f"gunicorn did not answer within 60 s: {server_log_tail(run)}")
    log(f"gunicorn serving on 127.0.0.1:{run.port} (pid {run.server.pid})")


def die_with_parent() -> None:
    """In the server's process: get SIGTERM when the benchmark dies, even by SIGKILL (Linux)."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def server_stop(run: Run) -> None:
    if run.server is None:
        return
    if run.server.poll() is None:
        run.server.send_signal(signal.SIGTERM)
        try:
            run.server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            run.server.kill()
            run.server.wait()
    run.server = None


def server_log_tail(run: Run) -> str:
    try:
        return (run.workdir / "gunicorn.log").read_text(errors="replace")[-2000:]
    except OSError:
        return "(no log)"


def http_get(port: int, path: str) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


# ---------------------------------------------------------------------------------------------
# Teardown


def cleanup(run: Run) -> None:
    """Drop the run's tenant databases and users and its master database."""
    try:
        from django.db import connections

        connections.close_all()
    except Exception as exc:  # Django may not be set up yet
        log(f"closing connections: {exc}")
    databases, users = run.admin.sweep(run.prefix)
    log(f"clean-up: dropped {databases} databases and {users} users of run {run.prefix}")
    shutil.rmtree(run.workdir, ignore_errors=True)


def leftovers_sweep(admin: MariaDBAdmin) -> None:
    """Drop what killed benchmark runs left: their databases, users and work directories."""
    for prefix in admin.leftover_prefixes():
        databases, users = admin.sweep(prefix)
        for workdir in Path(tempfile.gettempdir()).glob(f"{prefix}-*"):
            shutil.rmtree(workdir, ignore_errors=True)
        log(f"{prefix}: dropped {databases} databases and {users} users")
