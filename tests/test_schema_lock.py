"""No tenant's database user can hold up another tenant's migrations or take the server's
connections: the schema lock lives where tenant users cannot reach, and each user has a limit."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.db import connections
from rest_framework.test import APIClient

from m3saas.engines import engine, tenant_db_password
from m3saas.tenancy import migrate
from m3saas.tenancy.info import TenantInfo
from m3saas.tenancy.migrate import tenant_migrate_schema

pytestmark = [pytest.mark.django_db, pytest.mark.mariadb]

ROOT = Path(__file__).resolve().parents[1]
# MariaDB's ER_USER_LIMIT_REACHED: "User '…' has exceeded the 'max_user_connections' resource".
USER_LIMIT_REACHED = 1226


def login_as(tenant: TenantInfo, *, database: str | None = None) -> Any:
    import MySQLdb

    db = settings.M3SAAS_CONFIG.database
    return MySQLdb.connect(
        host=db.host,
        port=db.port,
        user=tenant.user,
        password=tenant_db_password(tenant.password),
        database=database or tenant.name,
    )


def test_another_tenants_user_cannot_hold_up_a_migration(make_tenant, monkeypatch):
    first = make_tenant()
    second = make_tenant(modules=[("test", 1)], provision=False)
    engine().database_create(second)
    monkeypatch.setattr(migrate, "SCHEMA_LOCK_TIMEOUT", 3)
    master = connections["default"].settings_dict["NAME"]
    hostile = login_as(first)
    try:
        with hostile.cursor() as cur:
            # What the old lock was, and every other way in the hostile user might try.
            cur.execute("SELECT GET_LOCK(%s, 0)", (f"m3saas:schema:{second.name}",))
            assert cur.fetchone()[0] == 1
            for statement in (
                f"SELECT name FROM `{master}`.`m3saas_schema_lock` FOR UPDATE",
                f"CREATE TABLE `{master}`.`m3saas_schema_lock` (name VARCHAR(64) PRIMARY KEY)",
                f"LOCK TABLES `{master}`.`m3saas_schema_lock` WRITE",
            ):
                with pytest.raises(Exception, match=r"denied"):
                    cur.execute(statement)
        started = time.monotonic()
        applied = tenant_migrate_schema(second)
        assert time.monotonic() - started < 2.5
        assert "test_v1.0001_initial" in applied
    finally:
        hostile.close()


def test_a_held_schema_lock_makes_the_next_one_give_up_after_its_timeout(make_tenant):
    tenant = make_tenant(provision=False)
    outcome: list[tuple[bool, float]] = []

    def second_taker() -> None:
        started = time.monotonic()
        try:
            with engine().schema_lock(tenant, timeout=1) as acquired:
                outcome.append((acquired, time.monotonic() - started))
        finally:
            connections.close_all()

    with engine().schema_lock(tenant, timeout=5) as held:
        assert held
        thread = threading.Thread(target=second_taker)
        thread.start()
        thread.join(timeout=30)
    assert len(outcome) == 1
    acquired, waited = outcome[0]
    assert not acquired
    assert 0.9 <= waited < 10
    with engine().schema_lock(tenant, timeout=1) as again:
        assert again  # released on exit


def test_a_schema_lock_is_released_when_its_block_raises(make_tenant):
    tenant = make_tenant(provision=False)
    with pytest.raises(RuntimeError), engine().schema_lock(tenant, timeout=1):
        raise RuntimeError("migration failed")
    with engine().schema_lock(tenant, timeout=1) as acquired:
        assert acquired


def test_a_tenant_user_cannot_open_more_connections_than_its_limit(make_tenant, settings):
    settings.TENANT_DB_MAX_CONNECTIONS = 3
    greedy, other = make_tenant(), make_tenant()
    connections.close_all()
    held = [login_as(greedy) for _ in range(3)]
    try:
        import MySQLdb

        with pytest.raises(MySQLdb.OperationalError) as refused:
            login_as(greedy)
        assert refused.value.args[0] == USER_LIMIT_REACHED
        assert "max_user_connections" in str(refused.value)
        login_as(other).close()  # other tenants still get in
    finally:
        for conn in held:
            conn.close()


@pytest.mark.module_apis_public
def test_a_tenant_at_its_connection_limit_answers_503_not_500(make_tenant, settings):
    """The limit reached is a busy tenant (503, try again), not a server error with a traceback."""
    settings.TENANT_DB_MAX_CONNECTIONS = 2
    tenant = make_tenant()
    connections[tenant.alias].close()  # provisioning's own connection counts too
    held = [login_as(tenant) for _ in range(2)]
    try:
        response = APIClient(raise_request_exception=False).get(f"/{tenant.id}/test/v1/animals")
        assert response.status_code == 503
        assert response.json()["error"]["code"] == "database_unavailable"
    finally:
        for conn in held:
            conn.close()


def test_reprovisioning_keeps_the_connection_limit_in_step(make_tenant, settings):
    from m3saas.engines.mysql import admin_connect
    from m3saas.exceptions import ProvisioningError

    settings.TENANT_DB_MAX_CONNECTIONS = 3
    tenant = make_tenant()
    settings.TENANT_DB_MAX_CONNECTIONS = 7
    engine().database_create(tenant)
    root = admin_connect(error=ProvisioningError)
    try:
        with root.cursor() as cur:
            cur.execute("SELECT max_user_connections FROM mysql.user WHERE User = %s", (tenant.user,))
            assert [int(row[0]) for row in cur.fetchall()] == [7]
    finally:
        root.close()


HOLD_LOCK = """
import sys, time, django
django.setup()
from m3saas.engines import engine
from m3saas.tenancy.info import TenantInfo
with engine().schema_lock(TenantInfo(id=1, name=sys.argv[1], user=sys.argv[1], password=""), timeout=5) as held:
    print("held" if held else "refused", flush=True)
    time.sleep(120)
"""


def test_the_server_releases_the_lock_of_a_killed_process(make_tenant, tmp_path):
    """A process killed while it holds a tenant's lock (no `finally` runs) does not block the next one."""
    tenant = make_tenant(provision=False)
    config = json.loads((ROOT / "tests" / "mariadb.config.json").read_text())
    config["tenants"]["database"]["database"] = connections["default"].settings_dict["NAME"]
    (tmp_path / "config.json").write_text(json.dumps(config))
    env = {**os.environ, "CONFIG_FILE": str(tmp_path / "config.json"), "VAR_DIR": str(tmp_path), "SECRET_KEY": "x"}
    env["DJANGO_SETTINGS_MODULE"] = "m3saas.settings"
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, tenant.name], cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "held"
        with engine().schema_lock(tenant, timeout=1) as acquired:
            assert not acquired  # really held by the other process
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=30)
        with engine().schema_lock(tenant, timeout=10) as acquired:
            assert acquired
    finally:
        holder.kill()
        holder.wait(timeout=30)
