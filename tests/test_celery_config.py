"""The Celery settings a deployment relies on, read as the workers read them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings

ROOT = Path(__file__).resolve().parents[1]
PRINT_TIMEOUT = (
    "import django; django.setup(); from m3saas.celery import app; "
    "print(app.conf.broker_transport_options['visibility_timeout'])"
)


def _run(code: str | None, **env: str) -> subprocess.CompletedProcess[str]:
    """`python -c code`, or `manage.py check` without code, in a fresh process with `env`."""
    environ = {
        k: v
        for k, v in os.environ.items()
        if k not in {"CONFIG_FILE", "CELERY_VISIBILITY_TIMEOUT", "FANOUT_WAIT_TIMEOUT"}
    }
    environ.update(DJANGO_SETTINGS_MODULE="m3saas.settings", SECRET_KEY="celery-config-test", **env)
    command = [sys.executable, "-c", code] if code is not None else [sys.executable, "manage.py", "check"]
    return subprocess.run(command, cwd=ROOT, env=environ, capture_output=True, text=True, timeout=60)


def test_the_redis_visibility_timeout_outlasts_a_long_task_and_every_retry_countdown():
    """A task not acknowledged within it is delivered again: it must be longer than a long migration."""
    from m3saas.celery import app
    from tenants.tasks import _retry_delay

    timeout = app.conf.broker_transport_options["visibility_timeout"]
    assert timeout == settings.VISIBILITY_TIMEOUT_DEFAULT == 6 * 3600
    assert timeout > 10 * _retry_delay(100)  # the longest countdown of a retry, with room


def test_the_workers_read_the_visibility_timeout_from_the_environment():
    done = _run(PRINT_TIMEOUT, CELERY_VISIBILITY_TIMEOUT="43200")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "43200"


def test_a_visibility_timeout_shorter_than_a_task_is_refused_in_one_line():
    done = _run(None, CELERY_VISIBILITY_TIMEOUT="60")
    assert done.returncode != 0
    assert "CELERY_VISIBILITY_TIMEOUT='60' is not valid: expected seconds, at least 600" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize("value", ["-1", "0", "604801"])
def test_a_fan_out_wait_that_gives_up_at_once_or_never_is_refused_in_one_line(value):
    done = _run(None, FANOUT_WAIT_TIMEOUT=value)
    assert done.returncode != 0
    expected = f"FANOUT_WAIT_TIMEOUT={value!r} is not valid: expected seconds, more than 0 and at most 604800"
    assert expected in done.stderr
    assert "Traceback" not in done.stderr


def test_the_fan_out_wait_is_read_from_the_environment():
    done = _run(
        "import django; django.setup(); from django.conf import settings; print(settings.FANOUT_WAIT_TIMEOUT)",
        FANOUT_WAIT_TIMEOUT="120",
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "120.0"
