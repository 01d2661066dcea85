"""An unusable SECRET_KEY stops start-up with one line, from `manage.py` and from gunicorn.

Django itself refuses an empty key only when a request first needs it: the server started and
every request, even `/health`, answered 500 with a traceback in the log.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
REFUSED = "M3SaaS cannot start: Set the SECRET_KEY environment variable to a long random value: it "


def _env(tmp_path: Path, *, config: bool, **values: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in {"CONFIG_FILE", "DJANGO_SETTINGS_MODULE", "SECRET_KEY"}}
    env.update(VAR_DIR=str(tmp_path / "var"), PATH=f"{Path(sys.executable).parent}:{env['PATH']}")
    if config:
        path = tmp_path / "config.json"
        path.write_text(json.dumps({"tenants": {"database": {"backend": "sqlite"}}}))
        env["CONFIG_FILE"] = str(path)
    env.update(values)
    return env


def _manage_check(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "manage.py", "check"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )


@pytest.mark.parametrize("config", [False, True], ids=["embedded", "config-file"])
@pytest.mark.parametrize("key", ["", "   "], ids=["empty", "whitespace"])
def test_manage_py_refuses_an_empty_secret_key_in_one_line(tmp_path, config, key):
    result = _manage_check(_env(tmp_path, config=config, SECRET_KEY=key))
    assert result.returncode == 2
    assert result.stderr == REFUSED + "is empty\n"


def test_manage_py_refuses_a_missing_secret_key_when_a_config_file_is_used(tmp_path):
    result = _manage_check(_env(tmp_path, config=True))
    assert result.returncode == 2
    assert result.stderr == REFUSED + "is missing and a config file is used\n"


def test_embedded_default_keeps_its_development_key(tmp_path):
    result = _manage_check(_env(tmp_path, config=False))
    assert result.returncode == 0, result.stderr
    assert "no issues" in result.stdout


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_gunicorn_stops_at_once_with_the_one_line(tmp_path):
    """Not a worker forked, failed and forked again forever: the master exits before serving."""
    env = _env(tmp_path, config=True, SECRET_KEY="", PORT=str(_free_port()), BIND_ADDRESS="127.0.0.1")
    command = [sys.executable, "-m", "gunicorn", "--config", "python:m3saas.gunicorn_conf", "m3saas.wsgi:application"]
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        stdout, stderr = process.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        stdout, stderr = process.communicate()
        pytest.fail(f"gunicorn kept running with an empty SECRET_KEY:\n{stderr[-1500:]}")
    assert process.returncode == 2
    assert stderr == REFUSED + "is empty\n"
    assert "Booting worker" not in stdout
