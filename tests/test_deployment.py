"""docker-compose.yml, the Dockerfile and bin/: what can be checked without Docker, and a real start.

Docker is not available where the suite runs, so the compose file and the Dockerfile are read
and checked against the repository and the settings the code reads; the start sequence and
gunicorn are then run for real, with the container's own commands.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography.fernet import Fernet
from django.core.management import get_commands

from tests.tcp_proxy import TcpProxy

ROOT = Path(__file__).resolve().parents[1]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
DOCKERFILE = (ROOT / "Dockerfile").read_text()
ENTRYPOINT = ROOT / "bin" / "docker-entrypoint.sh"
NGINX_CONF = (ROOT / "nginx.conf").read_text()
# The original's services, the buffering reverse proxy in front of the app, the shared cache (Redis,
# also the Celery broker), the Celery workers and their schedule.
EXPECTED_SERVICES = {"db", "app", "cron", "hive-mq", "adminer", "proxy", "worker", "beat", "redis"}
APP_SERVICES = ("app", "cron", "worker", "beat")


def _service(name: str) -> dict[str, Any]:
    return COMPOSE["services"][name]


def _dockerfile_instructions(name: str) -> list[str]:
    text = DOCKERFILE.replace("\\\n", " ")
    return [m.group(1).strip() for m in re.finditer(rf"^{name}\s+(.+)$", text, flags=re.MULTILINE)]


def _published(service: str) -> dict[int, int]:
    """Container port → host port."""
    ports = {}
    for entry in _service(service).get("ports", []):
        host, container = str(entry).split("#")[0].strip().split(":")[-2:]
        ports[int(container)] = int(host)
    return ports


def _code_env_names() -> set[str]:
    """Environment variables the settings, the config loader, gunicorn's config and bin/ read."""
    names: set[str] = set()
    python = [ROOT / "m3saas" / f for f in ("settings.py", "conf.py", "gunicorn_conf.py")]
    for path in python:
        text = path.read_text()
        names |= set(re.findall(r'env\.\w+\(\s*"([A-Z0-9_]+)"', text))
        names |= set(re.findall(r'environ(?:\.get)?[\(\[]\s*"([A-Z0-9_]+)"', text))
        names |= set(re.findall(r"environ(?:\.get)?[\(\[]\s*'([A-Z0-9_]+)'", text))
    for script in (ROOT / "bin").iterdir():
        names |= set(re.findall(r"\$\{?([A-Z][A-Z0-9_]*)", script.read_text()))
    # Read by gunicorn itself (worker count) and by the official image's Python.
    return names | {"WEB_CONCURRENCY"}


def _example_config() -> dict[str, Any]:
    return json.loads((ROOT / "secrets" / "config.json.secret.example").read_text())


# --- the compose file ------------------------------------------------------------------------


def test_compose_file_has_the_services_of_the_original():
    assert set(COMPOSE["services"]) == EXPECTED_SERVICES


@pytest.mark.parametrize("service", sorted(EXPECTED_SERVICES))
def test_every_build_context_and_dockerfile_exists(service):
    build = _service(service).get("build")
    if build is None:
        assert _service(service)["image"]
        return
    context = ROOT / (build if isinstance(build, str) else build["context"])
    assert context.is_dir()
    dockerfile = "Dockerfile" if isinstance(build, str) else build.get("dockerfile", "Dockerfile")
    assert (context / dockerfile).is_file()


def test_every_bind_mounted_file_exists():
    for service in COMPOSE["services"].values():
        for volume in service.get("volumes", []):
            source = str(volume).split(":")[0]
            if source.startswith("./"):
                assert (ROOT / source).exists(), source


def test_every_secret_a_service_uses_is_declared_and_has_an_example():
    declared = COMPOSE["secrets"]
    for service in COMPOSE["services"].values():
        for secret in service.get("secrets", []):
            name = secret if isinstance(secret, str) else secret["source"]
            assert name in declared
    for secret in declared.values():
        path = ROOT / secret["file"]
        assert path.parent.is_dir()
        assert Path(f"{path}.example").is_file(), f"{path}.example is missing"


def test_real_secrets_and_env_are_git_ignored():
    ignored = subprocess.run(
        ["git", "check-ignore", "secrets/config.json.secret", "secrets/db_root_password.secret", ".env"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    ).stdout.split()
    assert set(ignored) == {"secrets/config.json.secret", "secrets/db_root_password.secret", ".env"}


def test_database_takes_its_root_password_from_the_secret_and_creates_the_master():
    db = _service("db")
    assert db["image"].split(":")[0] in {"mariadb", "mysql"}
    assert "db_root_password" in db["secrets"]
    env = db["environment"]
    password_file = env.get("MARIADB_ROOT_PASSWORD_FILE") or env.get("MYSQL_ROOT_PASSWORD_FILE")
    assert password_file == "/run/secrets/db_root_password"
    master = env.get("MARIADB_DATABASE") or env.get("MYSQL_DATABASE")
    assert master == _example_config()["tenants"]["database"]["database"]
    assert db["healthcheck"]["test"]


def test_example_config_names_the_compose_services():
    config = _example_config()
    assert config["tenants"]["database"]["host"] == "db"
    assert config["mqtt"]["host"] == "hive-mq"
    assert int(config["mqtt"]["port"]) in _published("hive-mq")


@pytest.mark.parametrize("service", APP_SERVICES)
def test_app_services_get_the_config_as_the_config_json_secret(service):
    spec = _service(service)
    assert "config.json.secret" in spec["secrets"]
    assert spec["environment"]["CONFIG_FILE"] == "/run/secrets/config.json.secret"
    assert COMPOSE["secrets"]["config.json.secret"]["file"] == "./secrets/config.json.secret"


@pytest.mark.parametrize("service", APP_SERVICES)
def test_secret_key_is_required_from_the_environment(service):
    assert re.fullmatch(r"\$\{SECRET_KEY:\?.+\}", _service(service)["environment"]["SECRET_KEY"])


@pytest.mark.parametrize("service", APP_SERVICES)
def test_every_environment_variable_set_for_the_app_is_read_by_the_code(service):
    unread = set(_service(service)["environment"]) - _code_env_names()
    assert not unread, f"set in docker-compose.yml but read nowhere: {sorted(unread)}"


@pytest.mark.parametrize("service", APP_SERVICES)
def test_app_services_share_the_redis_service_as_their_cache(service):
    spec = _service(service)
    assert spec["environment"]["REDIS_URL"] == "${REDIS_URL:-redis://redis:6379/0}"
    assert spec["depends_on"]["redis"] == {"condition": "service_healthy"}
    redis = _service("redis")
    assert redis["image"].split(":")[0] == "redis"
    assert "redis-cli" in redis["healthcheck"]["test"]
    assert "6379" not in str(redis.get("ports", [])), "the cache is for the app only: not published"


def test_app_and_cron_share_the_image():
    assert _service("app")["image"] == _service("cron")["image"]
    assert _service("app")["build"] == _service("cron")["build"]


def test_hive_mq_publishes_mqtt_websockets_and_heartbeat():
    assert set(_published("hive-mq")) == {1883, 8000, 9090}
    assert _service("hive-mq")["build"]["context"] == "./hive-mq"


def test_adminer_is_published():
    assert _service("adminer")["image"].startswith("adminer")
    assert 8080 in _published("adminer")


def test_app_listens_on_port_80_behind_the_proxy_which_alone_publishes_it():
    assert _published("app") == {}
    assert _published("proxy") == {80: 80}
    assert [str(port) for port in _service("app")["expose"]] == ["80"]
    assert "80" in _dockerfile_instructions("EXPOSE")
    assert any(re.search(r"\bPORT=80\b", env) for env in _dockerfile_instructions("ENV"))
    assert _service("app")["sysctls"]["net.ipv4.ip_unprivileged_port_start"] == 0


def test_proxy_renders_the_repository_nginx_conf_with_its_environment():
    proxy = _service("proxy")
    assert proxy["image"].split(":")[0] == "nginx"
    assert "./nginx.conf:/etc/nginx/templates/default.conf.template:ro" in proxy["volumes"]
    # The image's envsubst replaces only what the environment defines: every ${NAME} must be there.
    assert set(re.findall(r"\$\{(\w+)\}", NGINX_CONF)) == set(proxy["environment"])
    assert "app" in proxy["depends_on"]


def test_proxy_forwards_to_gunicorn_with_the_app_body_limit():
    env = _service("proxy")["environment"]
    assert env["APP_UPSTREAM"] == "app:80"
    assert env["PROXY_LISTEN"] == "80"
    assert env["MAX_REQUEST_BODY_SIZE"] == _service("app")["environment"]["MAX_REQUEST_BODY_SIZE"]
    assert "client_max_body_size ${MAX_REQUEST_BODY_SIZE};" in NGINX_CONF


def test_proxy_buffers_times_out_slow_clients_and_forwards_the_client_headers():
    for directive in (
        "proxy_buffering on;",
        "proxy_request_buffering on;",
        "client_header_timeout 10s;",
        "client_body_timeout 10s;",
        "proxy_set_header Host $http_host;",
        "proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;",
        "proxy_set_header X-Forwarded-Proto $m3saas_forwarded_proto;",
    ):
        assert directive in NGINX_CONF


@pytest.mark.parametrize("service", APP_SERVICES)
def test_app_trusts_the_forwarded_proto_header_the_proxy_always_sets(service):
    header = _service(service)["environment"]["SECURE_PROXY_SSL_HEADER"]
    assert header == "${SECURE_PROXY_SSL_HEADER:-X-Forwarded-Proto=https}"


@pytest.mark.parametrize("service", APP_SERVICES)
def test_compose_commands_are_entrypoint_modes(service):
    modes = set(re.findall(r"^\s{4}([a-z]+)\)", ENTRYPOINT.read_text(), flags=re.MULTILINE))
    assert set(_service(service)["command"]) <= modes


# --- the Dockerfile and bin/ ------------------------------------------------------------------


def test_dockerfile_builds_in_two_stages_from_slim_python():
    stages = _dockerfile_instructions("FROM")
    assert len(stages) == 2
    arg = next(a for a in _dockerfile_instructions("ARG") if a.startswith("PYTHON_IMAGE="))
    assert re.fullmatch(r"PYTHON_IMAGE=python:3\.11-slim(-\w+)?", arg)
    build, runtime = DOCKERFILE.split("\nFROM ")[1:3]
    assert "libmariadb-dev" in build and "libmariadb-dev" not in runtime
    assert "libmariadb3" in runtime and "mariadb-client" in runtime


def test_dockerfile_runs_as_a_non_root_user():
    users = _dockerfile_instructions("USER")
    assert users and users[-1] not in {"root", "0"}


def test_dockerfile_entrypoint_and_command_exist_and_are_executable():
    (entrypoint,) = _dockerfile_instructions("ENTRYPOINT")
    (script,) = json.loads(entrypoint)
    path = ROOT / script.removeprefix("/app/")
    assert path.is_file() and os.access(path, os.X_OK)
    assert json.loads(_dockerfile_instructions("CMD")[-1]) == ["web"]


def test_bin_scripts_are_executable_shell_scripts():
    for script in (ROOT / "bin").iterdir():
        assert os.access(script, os.X_OK), script
        assert script.read_text().startswith("#!/bin/sh")
        assert subprocess.run(["sh", "-n", str(script)], check=False).returncode == 0


def test_every_manage_py_command_the_scripts_run_exists():
    used = set()
    for script in (ROOT / "bin").iterdir():
        used |= set(re.findall(r"python manage\.py (\w+)", script.read_text()))
    assert {"migrate", "seed", "migrate_tenants", "runcrons"} <= used
    assert used <= set(get_commands())


def test_runtime_requirements_are_what_the_image_installs():
    awk = re.search(r"awk '([^']+)' /tmp/requirements.txt", DOCKERFILE)
    assert awk is not None
    result = subprocess.run(
        ["awk", awk.group(1), str(ROOT / "requirements.txt")], capture_output=True, text=True, check=True
    )
    names = {line.split("==")[0].lower() for line in result.stdout.split()}
    assert {"django", "djangorestframework", "mysqlclient", "gunicorn", "whitenoise", "drf-spectacular"} <= names
    assert {"drf-spectacular-sidecar", "django-environ", "paho-mqtt"} <= names
    assert not names & {"pytest", "ruff", "mypy"}


def test_dockerignore_keeps_secrets_and_local_state_out_of_the_image():
    ignored = set((ROOT / ".dockerignore").read_text().split())
    assert {"secrets", ".env", ".venv", "var", "config.json", ".git"} <= ignored


def test_makefile_serves_with_the_container_command():
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^serve:", makefile, flags=re.MULTILINE)
    assert "bin/docker-entrypoint.sh serve" in makefile


def test_cron_loop_sleeps_until_the_next_run_then_runs_runcrons(tmp_path):
    stubs = tmp_path / "bin"
    stubs.mkdir()
    calls = tmp_path / "calls"
    slept = tmp_path / "slept"
    # The second sleep fails, which ends the loop (`set -e`).
    (stubs / "sleep").write_text(f'#!/bin/sh\necho "sleep $1" >> {calls}\n[ -e {slept} ] && exit 1\ntouch {slept}\n')
    (stubs / "python").write_text(f'#!/bin/sh\necho "python $*" >> {calls}\n')
    for stub in stubs.iterdir():
        stub.chmod(0o755)
    env = {**os.environ, "PATH": f"{stubs}:{os.environ['PATH']}", "CRON_TIME": "03:00", "TZ": "UTC"}
    subprocess.run([str(ROOT / "bin" / "cron-loop.sh")], env=env, capture_output=True, check=False, timeout=30)
    lines = calls.read_text().splitlines()
    assert lines[1] == "python manage.py runcrons"
    first_sleep = int(lines[0].split()[1])
    assert 0 < first_sleep <= 24 * 3600
    assert lines[2].startswith("sleep ")


def test_cron_loop_refuses_a_malformed_time():
    env = {**os.environ, "CRON_TIME": "3am"}
    result = subprocess.run([str(ROOT / "bin" / "cron-loop.sh")], env=env, capture_output=True, text=True, check=False)
    assert result.returncode == 2
    assert "CRON_TIME" in result.stderr


# --- a real start: the entrypoint, twice, then gunicorn -----------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _environment(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in {"CONFIG_FILE", "DJANGO_SETTINGS_MODULE"}}
    venv_bin = str(Path(sys.executable).parent)
    env.update(PATH=f"{venv_bin}:{env['PATH']}", SECRET_KEY="deployment-test-key", AUTO_MIGRATION="true")
    env.update(extra)
    return env


def _api_key(env: dict[str, str], tenant: str) -> str:
    """A new API key of `tenant`, made as an operator makes one (`manage.py tenant_key create`)."""
    done = subprocess.run(
        [sys.executable, "manage.py", "tenant_key", "create", tenant],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout.strip().splitlines()[-1]


def _entrypoint(mode: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(ENTRYPOINT), mode], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False
    )


def _get(url: str, key: str | None = None) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=10) as response:  # noqa: S310
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


@pytest.fixture
def gunicorn() -> Iterator[Any]:
    """`start(env)` runs the container's `serve` command on a free port; stopped at teardown."""
    started: list[subprocess.Popen[str]] = []

    def start(env: dict[str, str]) -> str:
        port = _free_port()
        process = subprocess.Popen(
            [str(ENTRYPOINT), "serve"],
            cwd=ROOT,
            env={**env, "PORT": str(port), "BIND_ADDRESS": "127.0.0.1", "WEB_CONCURRENCY": "1"},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        started.append(process)
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert process.poll() is None, process.stdout.read() if process.stdout else ""
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    return base
            except OSError:
                time.sleep(0.2)
        raise AssertionError("gunicorn did not listen within 60 s")

    yield start
    for process in started:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()


def test_start_sequence_is_idempotent_and_gunicorn_serves_the_demo_tenant(tmp_path, gunicorn):
    """Embedded default (SQLite under a fresh VAR_DIR): the same commands as the container."""
    env = _environment(VAR_DIR=str(tmp_path))
    first = _entrypoint("prepare", env)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "Applying tenants.0001_initial... OK" in first.stdout
    second = _entrypoint("prepare", env)
    assert second.returncode == 0, second.stdout + second.stderr
    assert "No migrations to apply." in second.stdout
    assert "main seeds: 0 inserted, 0 updated" in second.stdout
    assert re.search(r"(\d+) of \1 tenants migrated", second.stdout)
    assert "applied" not in second.stdout.replace("0 applied", "")

    base = gunicorn(env)
    assert _get(f"{base}/health") == (
        200,
        {"status": "ok", "version": _version(), "checks": _ok_checks(), "servers": {"default": "ok"}},
    )
    key = _api_key(env, "1")
    status, animals = _get(f"{base}/1/test/v1/animals", key)
    assert status == 200 and isinstance(animals, list)
    assert _get(f"{base}/1/test/v1/animals")[0] == 401
    status, body = _get(f"{base}/1/test/v1/no-such-thing", key)
    assert status == 404 and body["error"]["code"] == "not_found"


def _version() -> str:
    import m3saas

    return m3saas.__version__


def _ok_checks() -> dict[str, str]:
    return {"database": "ok", "mqtt": "disabled"}


@pytest.mark.mariadb
def test_gunicorn_on_mariadb_serves_turns_503_when_the_server_goes_and_recovers(tmp_path, gunicorn):
    """A throw-away master database and seeds, reached through a proxy the test cuts and restores."""
    from django.conf import settings

    server = settings.DATABASES["default"]
    suffix = uuid.uuid4().hex[:8]
    master, tenant = f"m3deploy_{suffix}", f"m3deploy_{suffix}_t"
    mysql = [
        "mariadb",
        f"--host={server['HOST']}",
        f"--port={server['PORT']}",
        f"--user={server['USER']}",
        *([f"--password={server['PASSWORD']}"] if server["PASSWORD"] else []),
    ]
    seeds = tmp_path / "fixtures"
    seeds.mkdir()
    (seeds / "01_tenants.json").write_text(
        json.dumps({"model": "tenants.tenant", "main": [{"id": 7, "name": tenant, "user": tenant, "password": "pw"}]})
    )
    (seeds / "02_modules.json").write_text(
        json.dumps({"model": "subscriptions.module", "main": [{"id": 1, "name": "test"}]})
    )
    (seeds / "03_subscriptions.json").write_text(
        json.dumps({"model": "subscriptions.subscription", "main": [{"id": 1, "tenant": 7, "module": 1, "version": 1}]})
    )
    (tmp_path / "deploy_settings.py").write_text(
        f"from m3saas.settings import *  # noqa\nMASTER_SEEDS_DIR = {str(seeds)!r}\n"
    )
    proxy = TcpProxy((server["HOST"], int(server["PORT"]))).start()
    config = tmp_path / "config.json"
    config.write_text(
        json.dumps(
            {
                "dbSalt": "deploy-test",
                "tenantPasswordKeys": [Fernet.generate_key().decode()],
                "tenants": {
                    "database": {
                        "host": "127.0.0.1",
                        "port": proxy.port,
                        "database": master,
                        "user": server["USER"],
                        "password": server["PASSWORD"],
                    }
                },
            }
        )
    )
    subprocess.run([*mysql, "-e", f"CREATE DATABASE `{master}`"], check=True)
    env = _environment(
        CONFIG_FILE=str(config),
        VAR_DIR=str(tmp_path / "var"),
        DJANGO_SETTINGS_MODULE="deploy_settings",
        PYTHONPATH=f"{tmp_path}:{ROOT}",
    )
    try:
        first = _entrypoint("prepare", env)
        assert first.returncode == 0, first.stdout + first.stderr
        second = _entrypoint("prepare", env)
        assert second.returncode == 0, second.stdout + second.stderr
        assert "No migrations to apply." in second.stdout
        assert "1 of 1 tenants migrated" in second.stdout

        base = gunicorn(env)
        key = _api_key(env, "7")
        assert _get(f"{base}/health")[0] == 200
        assert _get(f"{base}/7/test/v1/animals", key)[0] == 200

        proxy.cut()
        status, body = _get(f"{base}/health")
        assert status == 503 and body["checks"]["database"] == "unavailable"
        status, body = _get(f"{base}/7/test/v1/animals", key)
        assert status == 503 and body["error"]["code"] == "database_unavailable"

        proxy.restore()
        assert _get(f"{base}/health")[0] == 200
        assert _get(f"{base}/7/test/v1/animals", key)[0] == 200
    finally:
        proxy.cut()
        for statement in (
            f"DROP DATABASE IF EXISTS `{master}`",
            f"DROP DATABASE IF EXISTS `{tenant}`",
            f"DROP USER IF EXISTS '{tenant}'@'%'",
        ):
            subprocess.run([*mysql, "-e", statement], check=False)


def test_gunicorn_runs_with_the_gunicorn_config_module():
    """`make serve` and the image run the one command written in bin/docker-entrypoint.sh."""
    command = re.search(r"exec (gunicorn [^\n]+)", ENTRYPOINT.read_text())
    assert command is not None
    assert shlex.split(command.group(1))[:3] == ["gunicorn", "--config", "python:m3saas.gunicorn_conf"]


def test_start_stops_at_once_with_the_config_error(tmp_path):
    config = tmp_path / "config.json"
    config.write_text("{not json")
    result = _entrypoint("prepare", _environment(CONFIG_FILE=str(config), VAR_DIR=str(tmp_path)))
    assert result.returncode == 2
    assert f"M3SaaS cannot start: {config}: not valid JSON" in result.stderr


def test_start_stops_at_once_without_secret_key_in_production(tmp_path):
    config = tmp_path / "config.json"
    database = {"host": "db", "database": "m", "user": "u", "password": ""}
    config.write_text(json.dumps({"tenants": {"database": database}}))
    env = _environment(CONFIG_FILE=str(config), VAR_DIR=str(tmp_path))
    del env["SECRET_KEY"]
    result = _entrypoint("prepare", env)
    assert result.returncode == 2
    assert "Set the SECRET_KEY environment variable" in result.stderr


def test_workers_scale_and_beat_replaces_the_cron_loop_on_the_shared_redis():
    worker = _service("worker")
    assert "container_name" not in worker and "ports" not in worker  # `--scale worker=N` works
    assert worker["image"] == _service("beat")["image"] == _service("app")["image"]
    assert COMPOSE["x-app-environment"]["CELERY_BROKER_URL"] == "${CELERY_BROKER_URL:-redis://redis:6379/1}"
    assert _service("redis")["image"].startswith("redis:7")
    assert _service("cron")["profiles"] == ["cron-loop"]  # not started beside beat
