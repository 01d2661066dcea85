"""`GET /health`: the master database, every database server, the broker (when configured)
and the version; `GET /health?scope=master`: the master database only.

200 when every check passes, 503 naming what failed (`server db2`). It never needs a tenant
and never shows a host, a user or an error text (those go to the log). The default server is
the master's: `servers.default` repeats the `database` check rather than opening another
connection. A server that is down makes `/health` 503 while the tenants on the other servers
keep answering (only its own tenants answer 503, `database_unavailable`); a server that holds
tenants but is missing from the config is unavailable too. The container's health check asks
`scope=master`: one tenant server down must not mark every app container unhealthy.

The servers are checked at once, each in its own thread, with a short timeout, and each result
is kept a few seconds per process: an unreachable server costs `/health` at most
`SERVERS_WAIT_SECONDS`, and a flood of calls does not log in to every server each time.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from concurrent.futures import Future, wait
from typing import Any

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connections
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

import m3saas
from m3saas.api import error_body
from m3saas.engines import engine
from m3saas.servers import DEFAULT_SERVER, ServerConfig, server_configs
from m3saas.tenancy.directory import tenant_directory

logger = logging.getLogger(__name__)

OK = "ok"
UNAVAILABLE = "unavailable"
DISABLED = "disabled"
BROKER_TIMEOUT_SECONDS = 2.0
# A server's connection attempt (and each read) may take this long; `/health` waits a little
# longer for all of them together, below the image's HEALTHCHECK timeout (4 s).
SERVER_TIMEOUT_SECONDS = 2
SERVERS_WAIT_SECONDS = 2.5
# How long a server's result is reused in this process.
SERVER_CACHE_SECONDS = 5.0
SCOPES = ("all", "master")

_lock = threading.Lock()
_checked: dict[ServerConfig, tuple[float, str]] = {}
_running: dict[ServerConfig, Future[str]] = {}


def database_status(alias: str = DEFAULT_DB_ALIAS) -> str:
    """`ok` when `SELECT 1` answers on `alias`; a broken connection is closed so the next try reconnects."""
    connection = connections[alias]
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception as exc:
        logger.warning("health: database %r unavailable: %s: %s", alias, type(exc).__name__, exc)
        if not connection.in_atomic_block:
            connection.close()
        return UNAVAILABLE
    return OK


def broker_status() -> str:
    """`disabled` without an `mqtt` config; else whether the broker accepts a TCP connection."""
    mqtt = settings.M3SAAS_CONFIG.mqtt
    if mqtt is None:
        return DISABLED
    try:
        with socket.create_connection((mqtt.host, mqtt.port), timeout=BROKER_TIMEOUT_SECONDS):
            return OK
    except OSError as exc:
        logger.warning("health: MQTT broker unavailable: %s", exc.strerror or type(exc).__name__)
        return UNAVAILABLE


def _server_check(server: ServerConfig, future: Future[str]) -> None:
    try:
        problem = engine().server_problem(server, timeout=SERVER_TIMEOUT_SECONDS)
    except Exception as exc:  # a check must answer, whatever the driver raised
        problem = f"{type(exc).__name__}: {exc}"
    if problem:
        logger.warning("health: database server %r unavailable: %s", server.name, problem)
    status = UNAVAILABLE if problem else OK
    now = time.monotonic()
    with _lock:
        for stale in [key for key, (at, _) in _checked.items() if now - at >= SERVER_CACHE_SECONDS]:
            del _checked[stale]  # entries of a config no longer in use do not pile up
        _checked[server] = (now, status)
        _running.pop(server, None)
    future.set_result(status)


def _server_future(server: ServerConfig) -> Future[str]:
    """`server`'s status: the one kept from a recent check, the check under way, or a new one.

    Keyed by the whole config entry, so a changed address or account is checked again."""
    with _lock:
        kept = _checked.get(server)
        if kept is not None and time.monotonic() - kept[0] < SERVER_CACHE_SECONDS:
            done: Future[str] = Future()
            done.set_result(kept[1])
            return done
        future = _running.get(server)
        if future is None:
            future = _running[server] = Future()
            threading.Thread(
                target=_server_check, args=(server, future), name=f"health-{server.name}", daemon=True
            ).start()
        return future


def server_statuses(*, master: str) -> dict[str, str]:
    """Each database server's status, by name: the default one's is `master`'s, each configured
    one is connected to (at once, results kept briefly), and a server that holds tenants but is
    missing from the config is `unavailable`."""
    statuses: dict[str, str] = {}
    futures: dict[str, Future[str]] = {}
    for server in server_configs():
        if server.name == DEFAULT_SERVER:
            statuses[server.name] = master
        else:
            futures[server.name] = _server_future(server)
    if master == OK:
        try:
            holding = tenant_directory().server_names()
        except Exception as exc:  # the master went away since its check: that check reports it
            logger.warning("health: cannot list the servers holding tenants: %s: %s", type(exc).__name__, exc)
            holding = set()
        for name in sorted(holding - set(statuses) - set(futures)):
            logger.warning("health: database server %r holds tenants but is not in the config", name)
            statuses[name] = UNAVAILABLE
    wait(futures.values(), timeout=SERVERS_WAIT_SECONDS)
    for name, future in futures.items():
        if not future.done():
            logger.warning("health: database server %r did not answer within %ss", name, SERVERS_WAIT_SECONDS)
        statuses[name] = future.result() if future.done() else UNAVAILABLE
    return dict(sorted(statuses.items(), key=lambda item: (item[0] != DEFAULT_SERVER, item[0])))


def health_report(*, scope: str = "all") -> tuple[dict[str, Any], bool]:
    """The report's body and whether everything is well; `scope="master"`: the master database only."""
    if scope == "master":
        checks = {"database": database_status()}
        servers: dict[str, str] = {}
    else:
        checks = {"database": database_status(), "mqtt": broker_status()}
        servers = server_statuses(master=checks["database"])
    failing = [name for name, status in checks.items() if status == UNAVAILABLE]
    failing += [
        f"server {name}" for name, status in servers.items() if status == UNAVAILABLE and name != DEFAULT_SERVER
    ]
    body: dict[str, Any] = {
        "status": UNAVAILABLE if failing else OK,
        "version": m3saas.__version__,
        "checks": checks,
    }
    if scope != "master":
        body["servers"] = servers
    if failing:
        body.update(error_body("unhealthy", f"Unavailable: {', '.join(failing)}."))
    return body, not failing


class HealthView(APIView):
    """For load balancers and operators: no authentication, no tenant, no secrets."""

    schema = None

    def get(self, request: Request) -> Response:
        scope = request.query_params.get("scope", "all")
        if scope not in SCOPES:
            body = error_body("invalid_scope", f"scope must be one of: {', '.join(SCOPES)}.")
            return Response(body, status=400, headers={"Cache-Control": "no-store"})
        body, healthy = health_report(scope=scope)
        return Response(body, status=200 if healthy else 503, headers={"Cache-Control": "no-store"})
