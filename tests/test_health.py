"""`GET /health`: the master database, the broker, the servers and the version; 503 naming what
is down. `?scope=master`: the master database only (the container's health check)."""

from __future__ import annotations

import copy
import dataclasses
import json
import os
import re
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.db import connections
from django.test import override_settings
from rest_framework.test import APIClient

import m3saas
from m3saas.conf import MQTTConfig
from m3saas.servers import DEFAULT_SERVER
from tenants.models import DatabaseServer, Tenant
from tests.tcp_proxy import TcpProxy

pytestmark = pytest.mark.django_db


def _use_mqtt_config(monkeypatch: pytest.MonkeyPatch, mqtt: MQTTConfig | None) -> None:
    monkeypatch.setattr(settings, "M3SAAS_CONFIG", dataclasses.replace(settings.M3SAAS_CONFIG, mqtt=mqtt))


@pytest.fixture
def client() -> APIClient:
    return APIClient()


def dockerfile_health_check_run(live_server: Any) -> subprocess.CompletedProcess[str]:
    """The image's HEALTHCHECK command, run here with this interpreter against `live_server`."""
    text = (Path(__file__).resolve().parent.parent / "Dockerfile").read_text().replace("\\\n", " ")
    found = re.search(r"^HEALTHCHECK\s.*?CMD\s+(\[.*\])\s*$", text, flags=re.MULTILINE)
    assert found, "the Dockerfile has no HEALTHCHECK CMD"
    command: list[str] = json.loads(found.group(1))
    assert command[0] == "python"
    port = live_server.url.rsplit(":", 1)[1]
    env = {**os.environ, "PORT": port}
    return subprocess.run([sys.executable, *command[1:]], env=env, capture_output=True, text=True, timeout=30)


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def master_outage(tmp_path) -> Iterator[tuple[Callable[[], None], Callable[[], None]]]:
    """`(cut, restore)` of the master database as this thread's `default` connection sees it.

    On MariaDB the connection goes through a TCP proxy to the real server, which the test
    cuts; on SQLite the file moves out of reach. The shared server is never stopped.
    """
    original = connections["default"]
    settings_dict = copy.deepcopy(original.settings_dict)
    proxy: TcpProxy | None = None
    if settings_dict["ENGINE"].endswith("mysql"):
        proxy = TcpProxy((settings_dict["HOST"] or "127.0.0.1", int(settings_dict["PORT"] or 3306))).start()
        settings_dict.update(HOST="127.0.0.1", PORT=str(proxy.port))
        cut, restore = proxy.cut, proxy.restore
    else:
        reachable = str(tmp_path / "master.sqlite3")
        settings_dict["NAME"] = reachable

        def cut() -> None:
            # A file has no server to lose: the open connection goes, and the file is out of reach.
            settings_dict["NAME"] = str(tmp_path / "gone" / "master.sqlite3")
            connections["default"].close()

        def restore() -> None:
            settings_dict["NAME"] = reachable

    wrapper = type(original)(settings_dict, "default")
    connections["default"] = wrapper
    try:
        yield cut, restore
    finally:
        connections["default"] = original
        wrapper.close()
        if proxy is not None:
            proxy.cut()


def test_healthy_is_200_with_version_and_checks(client):
    response = client.get("/health")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["version"] == m3saas.__version__
    assert body["checks"]["database"] == "ok"


def test_health_needs_no_tenant_and_no_login(client):
    response = client.get("/health")
    assert response.status_code == 200
    assert "error" not in response.json()


def test_mqtt_is_reported_disabled_without_mqtt_config(client, monkeypatch):
    _use_mqtt_config(monkeypatch, None)
    assert client.get("/health").json()["checks"]["mqtt"] == "disabled"


def test_unreachable_broker_is_503_naming_mqtt(client, monkeypatch):
    mqtt = MQTTConfig(host="127.0.0.1", port=_closed_port(), username="app", password="broker-secret")
    _use_mqtt_config(monkeypatch, mqtt)
    response = client.get("/health")
    assert response.status_code == 503
    body = response.json()
    assert body["checks"] == {"database": "ok", "mqtt": "unavailable"}
    assert body["error"]["code"] == "unhealthy"
    assert "mqtt" in body["error"]["message"]


def test_reachable_broker_is_ok(client, monkeypatch, mqtt_broker):
    host, port = mqtt_broker
    mqtt = MQTTConfig(host=host, port=port, username=None, password=None)
    _use_mqtt_config(monkeypatch, mqtt)
    response = client.get("/health")
    assert response.status_code == 200
    assert response.json()["checks"]["mqtt"] == "ok"


def test_database_down_is_503_naming_the_database(client, master_outage):
    cut, _ = master_outage
    cut()
    response = client.get("/health")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable"
    assert body["checks"]["database"] == "unavailable"
    assert body["error"] == {"code": "unhealthy", "message": "Unavailable: database."}


def test_health_recovers_when_the_database_is_back(client, master_outage):
    cut, restore = master_outage
    assert client.get("/health").status_code == 200
    cut()
    assert client.get("/health").status_code == 503
    restore()
    assert client.get("/health").status_code == 200


def test_health_never_shows_hosts_users_or_passwords(client, monkeypatch, master_outage):
    mqtt = MQTTConfig(host="127.0.0.1", port=_closed_port(), username="app_user", password="broker-secret")
    _use_mqtt_config(monkeypatch, mqtt)
    cut, _ = master_outage
    cut()
    text = json.dumps(client.get("/health").json())
    db = settings.M3SAAS_CONFIG.database
    for secret in ("broker-secret", "app_user", "127.0.0.1", str(mqtt.port), db.password or "x-no-password"):
        assert secret not in text
    if db.user:
        assert f'"{db.user}"' not in text


def test_health_is_served_when_debug_is_on(client):
    with override_settings(DEBUG=True):
        assert client.get("/health").status_code == 200


def test_post_to_health_is_405_json(client):
    response = client.post("/health")
    assert response.status_code == 405
    assert response.json()["error"]["code"] == "method_not_allowed"


def test_master_scope_checks_only_the_master(client, monkeypatch):
    """The container's health check: a broker (or a tenant server) that is down leaves it 200."""
    mqtt = MQTTConfig(host="127.0.0.1", port=_closed_port(), username="app", password="broker-secret")
    _use_mqtt_config(monkeypatch, mqtt)
    assert client.get("/health").status_code == 503
    response = client.get("/health?scope=master")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "version": m3saas.__version__, "checks": {"database": "ok"}}


@pytest.mark.django_db(transaction=True)
def test_the_images_health_check_passes_with_the_broker_down(live_server, monkeypatch):
    """Restarting the app would not bring the broker back: the container stays healthy."""
    mqtt = MQTTConfig(host="127.0.0.1", port=_closed_port(), username="app", password="broker-secret")
    _use_mqtt_config(monkeypatch, mqtt)
    check = dockerfile_health_check_run(live_server)
    assert check.returncode == 0, check.stderr


def test_master_scope_is_503_when_the_master_is_down(client, master_outage):
    cut, _ = master_outage
    cut()
    response = client.get("/health?scope=master")
    assert response.status_code == 503
    assert response.json()["error"] == {"code": "unhealthy", "message": "Unavailable: database."}


def test_an_unknown_scope_is_400(client):
    response = client.get("/health?scope=<everything>")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_scope"
    assert "<everything>" not in response.content.decode()


def test_a_server_holding_tenants_but_missing_from_the_config_is_unavailable(client, make_tenant):
    """Its tenants answer 503 `server_unknown`: `/health` must not say all is well."""
    tenant = make_tenant(provision=False)
    assert client.get("/health").status_code == 200
    DatabaseServer.objects.create(name="hlthgone", host="10.0.0.9", port=3306)
    Tenant.objects.filter(pk=tenant.id).update(server="hlthgone")
    response = client.get("/health")
    assert response.status_code == 503
    body = response.json()
    assert body["servers"] == {DEFAULT_SERVER: "ok", "hlthgone": "unavailable"}
    assert body["error"]["message"] == "Unavailable: server hlthgone."
    assert "10.0.0.9" not in response.content.decode()
    # A row without tenants harms no one: it is not reported.
    Tenant.objects.filter(pk=tenant.id).update(server=None)
    assert client.get("/health").json()["servers"] == {DEFAULT_SERVER: "ok"}
