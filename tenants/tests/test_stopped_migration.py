"""SIGTERM (a container stop) or Ctrl-C stops `migrate_tenants` within seconds: the tenants in
flight finish, the queued ones are not started and are recorded `not_run`, the exit code is 3,
and a rerun completes them. The process is real (`stopped_migration.py`, slowed migrations)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connections

from tenants.management.commands.migrate_tenants import EXIT_STOPPED

# The process must see the test's master rows (MariaDB); SQLite: its own master under VAR_DIR.
pytestmark = pytest.mark.django_db(transaction=True)

ROOT = Path(__file__).resolve().parents[2]
TENANTS = 30
SLOW = "0.4"  # seconds added to each tenant's database work


@pytest.fixture
def env(tmp_path: Path, drop_new_tenants: None) -> dict[str, str]:
    values = {**os.environ, "VAR_DIR": str(tmp_path), "LOG_LEVEL": "WARNING"}
    if settings.M3SAAS_CONFIG.is_mysql:
        values["M3SAAS_TEST_MASTER"] = str(connections["default"].settings_dict["NAME"])
    return values


def _helper(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [sys.executable, "-m", "tenants.tests.stopped_migration", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    return done


def _latest_statuses(env: dict[str, str]) -> list[str]:
    done = _helper(env, "runs")
    assert done.returncode == 0, done.stderr
    return [runs[-1] if runs else "none" for runs in json.loads(done.stdout).values()]


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "Ctrl-C"])
def test_a_signal_stops_the_run_after_the_tenants_in_flight_and_a_rerun_completes_it(env, signum):
    setup = _helper(env, "setup", str(TENANTS))
    assert setup.returncode == 0, setup.stderr
    command = [sys.executable, "-m", "tenants.tests.stopped_migration", "migrate", SLOW, "--workers", "2"]
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert process.stdout is not None
    finished = 0
    for line in process.stdout:
        finished += ": OK" in line
        if finished == 3:
            break
    process.send_signal(signum)
    sent = time.monotonic()
    out, err = process.communicate(timeout=60)
    took = time.monotonic() - sent

    assert process.returncode == EXIT_STOPPED, out + err
    assert took < 5, f"took {took:.1f}s to stop"
    statuses = _latest_statuses(env)
    assert "running" not in statuses and "failed" not in statuses
    ok, not_run = statuses.count("ok"), statuses.count("not_run")
    assert ok >= 3 and not_run >= TENANTS // 2 and ok + not_run == TENANTS
    assert f"Stopped: {not_run} tenant(s) not run" in err
    assert err.count("NOT RUN (stopped)") == not_run

    rerun = _helper(env, "migrate", "0", "--failed")
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert f"{not_run} of {not_run} tenants migrated." in rerun.stdout
    assert set(_latest_statuses(env)) == {"ok"}
