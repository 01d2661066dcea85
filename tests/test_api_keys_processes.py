"""API keys seen from outside the test process: `make run`'s demo key, the command's exit codes,
and rate limits shared by two processes through the real Redis cache.

Each test runs `manage.py` in subprocesses on a fresh embedded default (SQLite under a
temporary VAR_DIR), prepared as `make demo` prepares it.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from conftest import IN_CI

ROOT = Path(__file__).resolve().parents[1]
REDIS = ("127.0.0.1", 6379)
# `make demo`'s steps (see the Makefile).
DEMO_STEPS = (["migrate", "--noinput", "-v", "0"], ["seed"], ["migrate_tenants"])


def _manage(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The environment of a fresh embedded default after `make demo`'s steps."""
    var_dir = tmp_path_factory.mktemp("keys-demo")
    unset = {"CONFIG_FILE", "DJANGO_SETTINGS_MODULE", "MODULE_API_ACCESS", "TENANT_RATE_LIMIT", "CACHE_URL"}
    env = {k: v for k, v in os.environ.items() if k not in unset}
    env.update(VAR_DIR=str(var_dir), SECRET_KEY="keys-process-test", LOG_LEVEL="WARNING")
    for step in DEMO_STEPS:
        done = _manage(env, *step)
        assert done.returncode == 0, done.stdout + done.stderr
    return env


# Asks the app in-process (Django's test client, the whole middleware stack) and prints the statuses.
_CALLS = """
import sys
from django.test import Client
client = Client(HTTP_AUTHORIZATION="Bearer " + sys.argv[-2]) if sys.argv[-2] != "-" else Client()
for _ in range(int(sys.argv[-1])):
    response = client.get("/1/test/v1/animals")
    body = response.json()
    code = body["error"]["code"] if isinstance(body, dict) and "error" in body else "-"
    print(response.status_code, response.get("Retry-After", "-"), code)
"""


def _calls(env: dict[str, str], key: str, count: int) -> list[list[str]]:
    done = subprocess.run(
        [sys.executable, "-c", _CALLS_PRELUDE + _CALLS, key, str(count)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    # Log lines (JSON) go to stdout too.
    return [line.split() for line in done.stdout.strip().splitlines() if re.match(r"^[0-9]{3} ", line)]


_CALLS_PRELUDE = """
import os, django
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "m3saas.settings")
django.setup()
"""


def test_make_demo_prints_a_ready_demo_key_and_the_same_one_every_time(demo):
    first = _manage(demo, "tenant_key", "demo")
    assert first.returncode == 0, first.stderr
    key = first.stdout.strip().splitlines()[-1]
    assert re.fullmatch(r"m3s_[a-z0-9]{8}_[A-Za-z0-9]{40}", key)
    assert "first_tenant" in first.stdout
    again = _manage(demo, "tenant_key", "demo")
    assert again.stdout.strip().splitlines()[-1] == key
    assert [line[0] for line in _calls(demo, key, 1)] == ["200"]
    assert _calls(demo, "-", 1) == [["401", "-", "not_authenticated"]]
    # `make demo` (which `make run` runs) prints it, and `make run` shows it in its curl line.
    makefile = (ROOT / "Makefile").read_text()
    demo_recipe = makefile.split("\ndemo:", 1)[1].split("\n\n", 1)[0]
    assert "$(PY) manage.py tenant_key demo" in demo_recipe
    assert "Authorization: Bearer $$KEY" in makefile.split("\nrun:", 1)[1].split("\n\n", 1)[0]
    # The README's first curl is the one `make run` prints: with the demo key.
    readme = (ROOT / "README.md").read_text()
    assert "Authorization: Bearer" in readme.split("## Layout")[0]


def test_a_revoked_demo_key_is_replaced_by_a_new_one(demo):
    key = _manage(demo, "tenant_key", "demo").stdout.strip().splitlines()[-1]
    assert _manage(demo, "tenant_key", "revoke", key.split("_")[1]).returncode == 0
    fresh = _manage(demo, "tenant_key", "demo").stdout.strip().splitlines()[-1]
    assert fresh != key
    assert [line[0] for line in _calls(demo, fresh, 1)] == ["200"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["create", "no_such_tenant"], "No tenant with id or name 'no_such_tenant'."),
        (["list", "99999"], "No tenant with id or name '99999'."),
        (["list", "²"], "No tenant with id or name '²'."),
        (["revoke", "zzzzzzzz"], "No API key with id 'zzzzzzzz'."),
        (["create", "1", "--expires", "yesterday"], "is not a date"),
        (["create", "1", "--expires", "2027-02-30"], "is not a date"),
        (["create", "1", "--expires", "2027-01-01T25:00"], "is not a date"),
        (["create", "1", "--modules", "not a module"], "is not a module name"),
    ],
)
def test_tenant_key_refuses_in_one_line_with_a_non_zero_exit(demo, args, message):
    done = _manage(demo, "tenant_key", *args)
    assert done.returncode != 0
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], done.stderr
    assert done.stdout == ""


def _redis_up() -> bool:
    try:
        with socket.create_connection(REDIS, timeout=2):
            return True
    except OSError:
        return False


def test_limits_hold_across_two_processes_sharing_redis(demo, tmp_path):
    if not _redis_up():
        message = f"Redis not reachable at {REDIS[0]}:{REDIS[1]}: start redis-server to run this test"
        if IN_CI:
            pytest.fail(message + " (CI=true: not skipped)")
        pytest.skip(message)
    # A cache of this test's own (its key prefix), on the real server every process shares.
    prefix = f"m3saas-test-{uuid.uuid4().hex}"
    (tmp_path / "redis_settings.py").write_text(
        "from m3saas.settings import *  # noqa\n"
        "CACHES = {'default': {'BACKEND': 'django.core.cache.backends.redis.RedisCache', "
        f"'LOCATION': 'redis://{REDIS[0]}:{REDIS[1]}/0', 'KEY_PREFIX': '{prefix}'}}}}\n"
    )
    env = {
        **demo,
        "DJANGO_SETTINGS_MODULE": "redis_settings",
        "PYTHONPATH": f"{tmp_path}:{ROOT}",
        # Per day: the window cannot roll over between the two processes (except at midnight UTC).
        "TENANT_RATE_LIMIT": "5/day",
    }
    key = _manage(env, "tenant_key", "create", "1").stdout.strip().splitlines()[-1]
    try:
        first = _calls(env, key, 4)
        second = _calls(env, key, 4)
    finally:
        import redis

        server = redis.Redis(host=REDIS[0], port=REDIS[1], db=0)
        for name in server.scan_iter(match=f"{prefix}:*"):
            server.delete(name)
    assert [line[0] for line in first] == ["200"] * 4
    assert [line[0] for line in second] == ["200", "429", "429", "429"]
    for _status, retry_after, code in second[1:]:
        assert code == "throttled"
        assert 1 <= int(retry_after) <= 86400
