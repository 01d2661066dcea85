"""A shared cache (REDIS_URL): every process routes a tenant the new way within a second.

Against the real Redis on 127.0.0.1:6379 (skipped when it is down, a failure under CI=true),
each test with its own key prefix, so suites running at the same time do not meet.
"""

from __future__ import annotations

import http.cookiejar
import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from django.core.cache import cache
from django.db import connections
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from conftest import IN_CI
from tests import test_deployment
from tests.test_deployment import _entrypoint, _environment, _get

ROOT = Path(__file__).resolve().parents[1]
# The in-process tests call a module API without a key; the gunicorn ones use test_deployment's keys.
pytestmark = pytest.mark.module_apis_public

REDIS_HOST, REDIS_PORT = "127.0.0.1", int(os.environ.get("REDIS_TEST_PORT", "6379"))
CHECK_MS = 500

# test_deployment's fixture that starts the container's gunicorn, used here under its own name.
gunicorn = test_deployment.gunicorn


@pytest.fixture
def redis_url() -> str:
    try:
        with socket.create_connection((REDIS_HOST, REDIS_PORT), timeout=2):
            pass
    except OSError:
        message = f"Redis not reachable at {REDIS_HOST}:{REDIS_PORT}: start redis-server to run this test"
        if IN_CI:
            pytest.fail(f"{message} (CI=true: the shared-cache tests must run)")
        pytest.skip(message)
    return f"redis://{REDIS_HOST}:{REDIS_PORT}/0"


@pytest.fixture
def key_prefix() -> Iterator[str]:
    prefix = f"m3saas-test-{uuid.uuid4().hex[:12]}"
    yield prefix
    import redis

    client = redis.Redis(host=REDIS_HOST, port=REDIS_PORT)
    keys = list(client.scan_iter(f"{prefix}:*"))
    if keys:
        client.delete(*keys)


@pytest.fixture
def shared_cache(settings: Any, redis_url: str, key_prefix: str) -> Iterator[None]:
    """This process's CACHES on the real Redis, as `REDIS_URL` sets them."""
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": redis_url,
            "KEY_PREFIX": key_prefix,
        }
    }
    settings.TENANT_CACHE_GENERATION_CHECK_MS = CHECK_MS
    yield
    # Only this test's keys: `cache.clear()` is FLUSHDB, which empties every other user's keys
    # (other suites' queues and caches on the same Redis) as well.
    import redis

    server = redis.Redis.from_url(redis_url)
    for name in server.scan_iter(match=f"{key_prefix}:*"):
        server.delete(name)


def test_redis_url_makes_the_default_cache_redis(redis_url, key_prefix):
    code = "from django.conf import settings; import json; print(json.dumps(settings.CACHES['default']))"
    env = {k: v for k, v in os.environ.items() if k not in {"CONFIG_FILE", "CACHE_URL", "DJANGO_SETTINGS_MODULE"}}
    env.update(REDIS_URL=redis_url, CACHE_KEY_PREFIX=key_prefix, SECRET_KEY="shared-cache-test")
    out = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", code],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    caches = json.loads(out.stdout.strip().splitlines()[-1])
    assert caches == {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": redis_url,
        "KEY_PREFIX": key_prefix,
    }


@pytest.mark.django_db
def test_warm_request_with_a_shared_cache_makes_no_master_query_and_no_redis_round_trip(
    shared_cache, make_tenant, monkeypatch
):
    tenant = make_tenant()
    url = f"/{tenant.id}/test/v1/animals"
    client = APIClient()
    assert client.get(url).status_code == 200  # warms the cache, the process's copy and the alias
    calls: list[str] = []

    def counted(name: str) -> Callable[..., Any]:
        real = getattr(cache, name)

        def call(*args: Any, **kwargs: Any) -> Any:
            calls.append(name)
            return real(*args, **kwargs)

        return call

    for name in ("get", "get_many", "add", "set"):
        monkeypatch.setattr(cache, name, counted(name))
    with CaptureQueriesContext(connections["default"]) as master:
        for _ in range(20):
            assert client.get(url).status_code == 200
    assert len(master) == 0, [q["sql"] for q in master.captured_queries]
    # Twenty requests in well under CHECK_MS: the generation is asked for at most once more.
    assert len(calls) <= 1, calls


# --- two real processes ---------------------------------------------------------------------


def _prepared(tmp_path: Path, **env: str) -> dict[str, str]:
    """The embedded default (demo tenant 1 on `test` v1) under a fresh VAR_DIR, prepared as the container does."""
    # Routing across processes is under test here, not keys (tests/test_api_keys_processes.py).
    environment = _environment(VAR_DIR=str(tmp_path / "var"), MODULE_API_ACCESS="public", **env)
    prepared = _entrypoint("prepare", environment)
    assert prepared.returncode == 0, prepared.stdout + prepared.stderr
    return environment


def _upgrade_in_another_process(env: dict[str, str]) -> float:
    """Move tenant 1 to `test` v2 in a process of its own; the wall-clock time of the commit."""
    code = (
        "import time; from tenants.selectors import tenant_info_get; "
        "from tenants.upgrade import subscription_upgrade; "
        "subscription_upgrade(tenant=tenant_info_get(tenant_id=1), module='test', to_version=2); "
        "print('committed', time.time())"
    )
    out = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", code],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    return float(out.stdout.split("committed")[-1].split()[0])


def _routes(base: str) -> tuple[int, int]:
    return _get(f"{base}/1/test/v1/animals")[0], _get(f"{base}/1/test/v2/animals")[0]


def _warm(servers: list[str]) -> None:
    for base in servers:
        for _ in range(3):
            assert _routes(base) == (200, 404)


def _routed_the_new_way_within_a_second(servers: list[str], committed: float) -> None:
    for base in servers:
        while _routes(base) != (404, 200):
            assert time.time() - committed < 1.0, f"{base} still routes tenant 1 to test v1"
            time.sleep(0.05)


def test_an_upgrade_in_a_third_process_reaches_every_server_within_a_second(
    tmp_path: Path, gunicorn: Callable[[dict[str, str]], str], redis_url: str, key_prefix: str
) -> None:
    env = _prepared(tmp_path, REDIS_URL=redis_url, CACHE_KEY_PREFIX=key_prefix)
    servers = [gunicorn(env), gunicorn(env)]
    _warm(servers)
    committed = _upgrade_in_another_process(env)
    _routed_the_new_way_within_a_second(servers, committed)


class _AdminSession:
    """A staff user's browser session on one server: cookies, and the CSRF token of each form."""

    def __init__(self, base: str, username: str, password: str) -> None:
        self.base = base
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
        self.post("/admin/login/?next=/admin/", {"username": username, "password": password}, form="/admin/login/")

    def get(self, path: str) -> str:
        with self.opener.open(f"{self.base}{path}", timeout=30) as response:
            return str(response.read().decode())

    def post(self, path: str, data: dict[str, Any], *, form: str) -> str:
        match = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', self.get(form))
        assert match is not None, f"no form at {form}"
        body = urllib.parse.urlencode({"csrfmiddlewaretoken": match.group(1), **data}, doseq=True).encode()
        referer = {"Referer": f"{self.base}{form}"}
        request = urllib.request.Request(f"{self.base}{path}", data=body, headers=referer)  # noqa: S310 (127.0.0.1)
        with self.opener.open(request, timeout=120) as response:
            return str(response.read().decode())


def test_a_move_in_one_servers_admin_reaches_the_other_server_within_a_second(
    tmp_path: Path, gunicorn: Callable[[dict[str, str]], str], redis_url: str, key_prefix: str
) -> None:
    """The issue's case: an operator moves tenant 1 to test v2 in the admin served by one worker."""
    env = _prepared(tmp_path, REDIS_URL=redis_url, CACHE_KEY_PREFIX=key_prefix)
    operator = {"DJANGO_SUPERUSER_USERNAME": "op", "DJANGO_SUPERUSER_EMAIL": "op@example.com"}
    made = subprocess.run(
        [sys.executable, "manage.py", "createsuperuser", "--noinput"],
        cwd=ROOT,
        env={**env, **operator, "DJANGO_SUPERUSER_PASSWORD": "pw-operator-123"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert made.returncode == 0, made.stdout + made.stderr
    one, other = gunicorn(env), gunicorn(env)
    _warm([one, other])
    admin = _AdminSession(one, "op", "pw-operator-123")
    page = admin.post(
        "/admin/subscriptions/subscription/",
        {"action": "move_major_version", "_selected_action": ["1"], "apply": "1", "to_version": "2"},
        form="/admin/subscriptions/subscription/",
    )
    committed = time.time()
    assert "test v1 → v2: OK" in page
    assert _routes(one) == (404, 200)  # the process that made the change: at once
    _routed_the_new_way_within_a_second([other], committed)


def test_the_embedded_defaults_processes_share_its_file_cache(
    tmp_path: Path, gunicorn: Callable[[dict[str, str]], str]
) -> None:
    """`make run`: a change made by a command (another process) reaches the server within a second."""
    env = _prepared(tmp_path)
    assert "REDIS_URL" not in env and "CACHE_URL" not in env and "CONFIG_FILE" not in env
    server = gunicorn(env)
    _warm([server])
    committed = _upgrade_in_another_process(env)
    _routed_the_new_way_within_a_second([server], committed)


def test_without_a_shared_cache_other_processes_route_the_old_way_until_the_timeout(
    tmp_path: Path, gunicorn: Callable[[dict[str, str]], str]
) -> None:
    """What the README says to expect of several processes on a per-process cache."""
    env = _prepared(tmp_path, CACHE_URL="locmemcache://m3saas")
    assert "REDIS_URL" not in env
    server = gunicorn(env)
    _warm([server])
    _upgrade_in_another_process(env)
    time.sleep(1.5)
    assert _routes(server) == (200, 404)


@pytest.mark.django_db
def test_a_cache_that_does_not_answer_fails_no_request(settings, make_tenant, monkeypatch, caplog):
    """Redis down: tenants are read from the master on every request, with a warning, not a 500."""
    import m3saas.tenancy.cache as tenancy_cache

    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    # Restored after the test: the outage this test makes must not reach the next one.
    monkeypatch.setattr(tenancy_cache, "_down_since", None)
    monkeypatch.setattr(tenancy_cache, "_seen", (0.0, ""))
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": f"redis://127.0.0.1:{closed_port}/0",
        }
    }
    settings.TENANT_CACHE_GENERATION_CHECK_MS = CHECK_MS
    tenant = make_tenant()
    client = APIClient()
    for _ in range(3):
        response = client.get(f"/{tenant.id}/test/v1/animals")
        assert response.status_code == 200, response.content
    assert "The cache does not answer" in caplog.text
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
