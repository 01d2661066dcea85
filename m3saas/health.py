"""`GET /health`: the master database, every database server, the broker (when configured)
and the version.

200 when every check passes, 503 naming what failed (`server db2`). It never needs a tenant
and never shows a host, a user or an error text (those go to the log). The default server is
the master's: `servers.default` repeats the `database` check rather than opening another
connection. A server that is down makes `/health` 503 while the tenants on the other servers
keep answering (only its own tenants answer 503, `database_unavailable`).
"""

from __future__ import annotations

import logging
import socket
from typing import Any

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connections
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

import m3saas
from m3saas.api import error_body
from m3saas.engines import engine
from m3saas.servers import DEFAULT_SERVER, server_configs

logger = logging.getLogger(__name__)

OK = "ok"
UNAVAILABLE = "unavailable"
DISABLED = "disabled"
BROKER_TIMEOUT_SECONDS = 2.0


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


def server_statuses(*, master: str) -> dict[str, str]:
    """Each configured database server's status, by name; the default one's is `master`'s."""
    statuses: dict[str, str] = {}
    for server in server_configs():
        if server.name == DEFAULT_SERVER:
            statuses[server.name] = master
            continue
        problem = engine().server_problem(server)
        if problem:
            logger.warning("health: database server %r unavailable: %s", server.name, problem)
        statuses[server.name] = UNAVAILABLE if problem else OK
    return statuses


def health_report() -> tuple[dict[str, Any], bool]:
    """The report's body and whether everything is well."""
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
        "servers": servers,
    }
    if failing:
        body.update(error_body("unhealthy", f"Unavailable: {', '.join(failing)}."))
    return body, not failing


class HealthView(APIView):
    """For load balancers and operators: no authentication, no tenant, no secrets."""

    schema = None

    def get(self, request: Request) -> Response:
        body, healthy = health_report()
        return Response(body, status=200 if healthy else 503, headers={"Cache-Control": "no-store"})
