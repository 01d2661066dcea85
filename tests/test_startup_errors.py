"""Start-up problems are one line on stderr with a clear exit code, from `manage.py` and gunicorn.

A bad environment value names the variable and the expected form (exit 2: waiting will not
help); a master database that does not answer names its host and port (exit 1: the entry
point keeps waiting). Logs come in one format per output: text on a terminal, JSON otherwise.
"""

from __future__ import annotations

import json
import os
import pty
import socket
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PROBE_LOGS = (
    "import logging; logging.getLogger('django.server').warning('server line'); "
    "logging.getLogger('django').warning('django line'); logging.getLogger('probe').warning('app line')"
)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _env(tmp_path: Path, **values: str) -> dict[str, str]:
    drop = {"CONFIG_FILE", "DJANGO_SETTINGS_MODULE", "LOG_FORMAT", "DEBUG", "TENANT_CACHE_TIMEOUT"}
    env = {k: v for k, v in os.environ.items() if k not in drop}
    env.update(VAR_DIR=str(tmp_path / "var"), SECRET_KEY="startup-tests", **values)
    return env


def _down_config(tmp_path: Path, port: int) -> str:
    """A MariaDB config whose server does not listen (a free port: nothing to start)."""
    path = tmp_path / "down.json"
    database = {"host": "127.0.0.1", "port": port, "database": "m3_down", "user": "root", "password": ""}
    path.write_text(json.dumps({"dbSalt": "s", "tenants": {"database": database}}))
    return str(path)


def _manage(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=90
    )


def _gunicorn(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "gunicorn", "--config", "python:m3saas.gunicorn_conf", "m3saas.wsgi:application"]
    env = {**env, "PORT": str(_free_port()), "BIND_ADDRESS": "127.0.0.1"}
    try:
        return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=30)
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"gunicorn kept running: {exc.stderr!r}")


def assert_one_line(stderr: str, *fragments: str) -> None:
    assert "Traceback" not in stderr
    assert stderr.count("\n") == 1 and stderr.startswith("M3SaaS cannot start: "), stderr
    for fragment in fragments:
        assert fragment in stderr


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("TENANT_CACHE_TIMEOUT", "abc", "expected a whole number"),
        ("DEBUG", "maybe", "expected a boolean"),
        ("MQTT_CLOSE_TIMEOUT", "soon", "expected a number"),
        ("LOG_FORMAT", "xml", "expected one of auto, json, text"),
        ("LOG_LEVEL", "loud", "expected one of DEBUG, INFO"),
    ],
)
def test_a_bad_environment_value_is_one_line_naming_the_variable_and_the_form(tmp_path, variable, value, expected):
    result = _manage(_env(tmp_path, **{variable: value}), "check")
    assert result.returncode == 2
    assert_one_line(result.stderr, f"{variable}='{value}'", expected)


@pytest.mark.parametrize(
    "variable", ["TENANT_MAX_OPEN_CONNECTIONS", "TENANT_CONN_MAX_AGE", "TENANT_DB_MAX_CONNECTIONS"]
)
def test_a_negative_count_of_connections_or_seconds_is_one_line(tmp_path, variable):
    result = _manage(_env(tmp_path, **{variable: "-1"}), "check")
    assert result.returncode != 0
    assert_one_line(result.stderr, f"{variable} must be 0 or more, not -1")


@pytest.mark.parametrize("value", ["yes", "TRUE", "0", "off"])
def test_booleans_take_the_usual_words(tmp_path, value):
    result = _manage(_env(tmp_path, DEBUG=value), "check")
    assert result.returncode == 0, result.stderr


def test_gunicorn_refuses_a_bad_environment_value_in_one_line(tmp_path):
    result = _gunicorn(_env(tmp_path, GUNICORN_THREADS="many"))
    assert result.returncode == 2
    assert_one_line(result.stderr, "GUNICORN_THREADS='many'", "whole number")


def test_gunicorn_refuses_a_bad_setting_in_one_line_before_forking(tmp_path):
    result = _gunicorn(_env(tmp_path, TENANT_CACHE_TIMEOUT="abc"))
    assert result.returncode == 2
    assert_one_line(result.stderr, "TENANT_CACHE_TIMEOUT='abc'")
    assert "Booting worker" not in result.stdout


@pytest.mark.parametrize("command", [["migrate", "--noinput"], ["seed"], ["migrate_tenants"], ["migration_report"]])
def test_an_unreachable_database_is_one_line_naming_host_and_port(tmp_path, command):
    port = _free_port()
    result = _manage(_env(tmp_path, CONFIG_FILE=_down_config(tmp_path, port)), *command)
    assert result.returncode == 1, result.stderr
    assert_one_line(result.stderr, f"127.0.0.1:{port}", "does not answer", "down.json")


def test_gunicorn_stops_in_one_line_when_the_database_does_not_answer(tmp_path):
    port = _free_port()
    result = _gunicorn(_env(tmp_path, CONFIG_FILE=_down_config(tmp_path, port)))
    assert result.returncode == 1
    assert_one_line(result.stderr, f"127.0.0.1:{port}", "does not answer")
    assert "Booting worker" not in result.stdout


@pytest.mark.parametrize("setting", ["auto", "json"])
def test_logs_are_json_lines_when_not_on_a_terminal(tmp_path, setting):
    result = _manage(_env(tmp_path, LOG_FORMAT=setting, DEBUG="true"), "shell", "-v", "0", "-c", PROBE_LOGS)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert [json.loads(line)["message"] for line in lines] == ["server line", "django line", "app line"]
    assert result.stderr == ""


def test_logs_are_text_on_a_terminal(tmp_path):
    """The same records on a pseudo-terminal: text lines only, none of them JSON."""
    leader, follower = pty.openpty()
    env = _env(tmp_path, DEBUG="true")
    command = [sys.executable, "manage.py", "shell", "-v", "0", "-c", PROBE_LOGS]
    with subprocess.Popen(command, cwd=ROOT, env=env, stdout=follower, stderr=follower) as process:
        os.close(follower)
        chunks = []
        while True:
            try:
                chunk = os.read(leader, 4096)
            except OSError:
                break
            if not chunk:
                break
            chunks.append(chunk)
        assert process.wait(timeout=60) == 0
    os.close(leader)
    lines = b"".join(chunks).decode().splitlines()
    assert len(lines) == 3
    for line, message in zip(lines, ["server line", "django line", "app line"], strict=True):
        assert line.endswith(message) and " WARNING " in line and not line.startswith("{")
