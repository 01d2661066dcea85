"""Moves run by a real `manage.py move_tenant` process: killed at each step, and written to.

The command runs against this test's master (a config file naming it, with `db2` in
`tenants.servers`); `M3SAAS_TEST_MOVE_PAUSE=<step>` (a test-only hook of the command) stops it
when that step begins, where it is SIGKILLed or let go on. This process plays another app
process: its tenant cache is its own (per-process), so it sees the mover's changes only when it
invalidates it, as a shared cache (REDIS_URL) or TENANT_CACHE_TIMEOUT would make it.
"""

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
from django.test.utils import CaptureQueriesContext

from m3saas.servers import DEFAULT_SERVER, server_config
from m3saas.tenancy.cache import master_cache_invalidate
from tenants import moves
from tenants.models import Tenant, TenantMove
from tenants.tests.helpers import animals_on, databases, query

pytestmark = [pytest.mark.mariadb, pytest.mark.django_db(transaction=True)]

ROOT = Path(__file__).resolve().parents[2]
BEFORE_SWITCH = ["freeze", "copy", "verify", "switch"]


@pytest.fixture(autouse=True)
def _liveness_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """A write asks at once whether the mover lives (in production at most every 2 s per process)."""
    monkeypatch.setattr(moves, "LIVENESS_CHECK_SECONDS", 0.0)


@pytest.fixture
def manage(two_servers: str, tmp_path: Path) -> Any:
    """`manage(*args, pause=None)` → a started `manage.py` process on this test's master and db2."""
    db = settings.M3SAAS_CONFIG.database
    db2 = server_config(two_servers)
    source = json.loads((ROOT / "tests" / "mariadb.config.json").read_text())
    source["tenants"]["database"].update(
        host=db.host,
        port=db.port,
        user=db.user,
        password=db.password,
        database=connections["default"].settings_dict["NAME"],
    )
    source["tenants"]["servers"] = {
        two_servers: {"host": db2.host, "port": db2.port, "user": db2.user, "password": db2.password}
    }
    config = tmp_path / "config.json"
    config.write_text(json.dumps(source))
    env = {**os.environ, "CONFIG_FILE": str(config), "VAR_DIR": str(tmp_path / "var"), "SECRET_KEY": "x"}
    env.pop("DJANGO_SETTINGS_MODULE", None)
    env.pop("M3SAAS_TEST_MOVE_PAUSE", None)

    def start(*args: str, pause: str | None = None) -> subprocess.Popen[str]:
        run_env = {**env, "M3SAAS_TEST_MOVE_PAUSE": pause} if pause else env
        return subprocess.Popen(
            [sys.executable, "manage.py", "move_tenant", *args],
            cwd=ROOT,
            env=run_env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    return start


def paused(process: subprocess.Popen[str], step: str) -> None:
    """Wait until the process says it paused at `step`."""
    assert process.stdout is not None
    for line in process.stdout:
        if line.strip() == f"paused at {step}":
            return
    pytest.fail(f"the move never paused at {step}: {process.stderr.read() if process.stderr else ''}")


def finished(process: subprocess.Popen[str]) -> str:
    out, err = process.communicate(input="\n", timeout=180)
    assert process.returncode == 0, err[-2000:]
    return out


def kill(process: subprocess.Popen[str]) -> None:
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=60)
    assert process.returncode == -signal.SIGKILL


def names(client: Any, tenant: Any) -> list[str]:
    response = client.get(f"/{tenant.id}/test/v1/animals")
    assert response.status_code == 200, response.content
    return [a["name"] for a in response.json()]


def fresh_view(tenant: Any) -> None:
    """See the mover's changes, as a shared cache would show them; reconnect, as a request would."""
    master_cache_invalidate()
    connections[tenant.alias].close()


@pytest.mark.parametrize("step", BEFORE_SWITCH)
def test_a_move_killed_before_its_switch_leaves_the_tenant_on_its_source_and_a_rerun_completes_it(
    two_servers, movable, manage, tenant_client, step
):
    tenant = movable()
    client = tenant_client(tenant)
    assert client.post(f"/{tenant.id}/test/v1/animals", {"name": "Rex"}).status_code == 201
    process = manage(tenant.name, "--to", two_servers, pause=step)
    paused(process, step)
    kill(process)
    fresh_view(tenant)

    row = Tenant.objects.get(pk=tenant.id)
    assert (row.server_name, row.moving) == (DEFAULT_SERVER, True)
    assert TenantMove.objects.get(tenant_id=tenant.id).step == step
    assert names(client, tenant) == ["Rex"]  # reads go on
    # The first write finds the mover dead: the move is closed, the source writes again.
    created = client.post(f"/{tenant.id}/test/v1/animals", {"name": "Tom"})
    assert created.status_code == 201, created.content
    assert animals_on(DEFAULT_SERVER, tenant) == ["Rex", "Tom"]
    assert TenantMove.objects.get(tenant_id=tenant.id).status == TenantMove.Status.INTERRUPTED

    out = finished(manage(tenant.name, "--to", two_servers))

    assert f"{tenant.name}: moved from default to {two_servers}" in out
    fresh_view(tenant)
    assert Tenant.objects.get(pk=tenant.id).server_name == two_servers
    assert names(client, tenant) == ["Rex", "Tom"]
    assert animals_on(two_servers, tenant) == ["Rex", "Tom"]
    statuses = list(TenantMove.objects.filter(tenant_id=tenant.id).order_by("id").values_list("status", flat=True))
    assert statuses == ["interrupted", "done"]


def test_a_rerun_completes_a_killed_move_and_recopies_the_half_copied_target(
    two_servers, movable, manage, tenant_client
):
    tenant = movable()
    client = tenant_client(tenant)
    for name in ("Rex", "Tom"):
        assert client.post(f"/{tenant.id}/test/v1/animals", {"name": name}).status_code == 201
    process = manage(tenant.name, "--to", two_servers, pause="verify")
    paused(process, "verify")
    kill(process)
    # What a copy killed half way leaves: rows missing, a table missing.
    query(two_servers, f"DELETE FROM `{tenant.name}`.test_v1_animal WHERE name = 'Tom'")
    query(two_servers, f"DROP TABLE `{tenant.name}`.django_migrations")

    out = finished(manage(tenant.name, "--to", two_servers))

    assert "(an interrupted move, completed)" in out
    fresh_view(tenant)
    assert animals_on(two_servers, tenant) == ["Rex", "Tom"]
    assert names(client, tenant) == ["Rex", "Tom"]
    [record] = TenantMove.objects.filter(tenant_id=tenant.id)
    assert (record.status, record.created_target) == ("done", True)
    assert "table django_migrations" in record.verified


def test_a_move_killed_after_its_switch_is_served_from_the_target_and_a_rerun_retires_the_source(
    two_servers, movable, manage, tenant_client
):
    tenant = movable()
    client = tenant_client(tenant)
    assert client.post(f"/{tenant.id}/test/v1/animals", {"name": "Rex"}).status_code == 201
    process = manage(tenant.name, "--to", two_servers, pause="retire")
    paused(process, "retire")
    kill(process)
    fresh_view(tenant)

    row = Tenant.objects.get(pk=tenant.id)
    assert (row.server_name, row.moving) == (two_servers, False)
    assert client.post(f"/{tenant.id}/test/v1/animals", {"name": "Tom"}).status_code == 201
    assert animals_on(two_servers, tenant) == ["Rex", "Tom"]

    out = finished(manage(tenant.name, "--to", two_servers))

    assert "(an interrupted move, completed)" in out
    grants = [r[0] for r in query(DEFAULT_SERVER, "SHOW GRANTS FOR %s@'%%'", (tenant.user,))]
    assert all(grant.startswith("GRANT USAGE ON *.*") for grant in grants), grants
    assert TenantMove.objects.get(tenant_id=tenant.id).status == TenantMove.Status.DONE


def test_abort_ends_a_killed_move_and_drops_its_copy(two_servers, movable, manage, tenant_client):
    tenant = movable()
    process = manage(tenant.name, "--to", two_servers, pause="verify")
    paused(process, "verify")
    kill(process)
    assert tenant.name in databases(two_servers)

    out = finished(manage(tenant.name, "--abort"))

    assert f"{tenant.name}: move to {two_servers} aborted; it stays on default, writing." in out
    assert tenant.name not in databases(two_servers)
    fresh_view(tenant)
    assert tenant_client(tenant).post(f"/{tenant.id}/test/v1/animals", {"name": "Rex"}).status_code == 201


def test_writes_while_a_tenant_moves_are_refused_with_503_and_none_acknowledged_is_lost(
    two_servers, movable, manage, tenant_client, settings
):
    """A writer hammers POSTs through the whole move, from a process that does not see the move's
    flag (its cache is stale): the database's freeze refuses them; another tenant is untouched."""
    settings.TENANT_RATE_LIMIT = None  # the writer outpaces any per-tenant limit on a slow machine
    tenant, other = movable(), movable()
    client, other_client = tenant_client(tenant), tenant_client(other)
    acknowledged: list[str] = []
    refused: list[Any] = []
    cut: set[str] = set()  # writes whose connection the freeze ended mid-request: their outcome is unknown
    other_statuses: list[int] = []
    stop = threading.Event()

    def writer() -> None:
        n = 0
        while not stop.is_set():
            n += 1
            response = client.post(f"/{tenant.id}/test/v1/animals", {"name": f"w{n}"})
            if response.status_code == 201:
                acknowledged.append(f"w{n}")
            else:
                refused.append(response)
                if response.json()["error"]["code"] == "database_unavailable":
                    cut.add(f"w{n}")
                connections[tenant.alias].close()  # as a new request would reconnect
            other_statuses.append(other_client.post(f"/{other.id}/test/v1/animals", {"name": f"o{n}"}).status_code)
        connections.close_all()

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        time.sleep(1)
        process = manage(tenant.name, "--to", two_servers, pause="verify")
        paused(process, "verify")
        frozen_at = len(refused)
        time.sleep(1.5)  # frozen, copied, not switched: every write now is refused
        assert len(refused) > frozen_at
        finished(process)
        time.sleep(1)  # switched; this process still points at the retired source
    finally:
        stop.set()
        thread.join(timeout=60)
    assert acknowledged and refused
    for response in refused:
        assert response.status_code == 503, response.content
        assert response["Retry-After"].isdigit()
        assert response.json()["error"]["code"] in {"tenant_moving", "database_unavailable"}
    assert set(other_statuses) == {201}
    fresh_view(tenant)
    # Every acknowledged write is on the target. A write refused before it reached the database
    # (`tenant_moving`, or the freeze's privileges) was kept nowhere; only one whose session the
    # freeze ended mid-request (a lost connection, as with any network failure) may have committed
    # before the snapshot, and then it is on the target too.
    on_target = animals_on(two_servers, tenant)
    assert set(acknowledged) <= set(on_target)
    assert set(on_target) - set(acknowledged) <= cut, cut
    assert len(set(on_target) - set(acknowledged)) <= 1  # at most the one write in flight at the kill
    assert names(client, tenant) == on_target


def test_a_tenant_seen_moving_refuses_writes_with_retry_after_and_serves_reads(
    two_servers, movable, manage, tenant_client
):
    tenant, other = movable(), movable()
    client = tenant_client(tenant)
    assert client.post(f"/{tenant.id}/test/v1/animals", {"name": "Rex"}).status_code == 201
    other_client = tenant_client(other)
    process = manage(tenant.name, "--to", two_servers, pause="copy")
    try:
        paused(process, "copy")
        fresh_view(tenant)  # this process now sees the flag
        refused = client.post(f"/{tenant.id}/test/v1/animals", {"name": "Tom"})
        assert refused.status_code == 503
        assert refused.json()["error"]["code"] == "tenant_moving"
        assert int(refused["Retry-After"]) > 0
        assert names(client, tenant) == ["Rex"]
        # Another tenant, and its warm requests, cost no more than before: no master query.
        assert other_client.post(f"/{other.id}/test/v1/animals", {"name": "Ok"}).status_code == 201
        with CaptureQueriesContext(connections["default"]) as master:
            assert other_client.get(f"/{other.id}/test/v1/animals").status_code == 200
            assert names(client, tenant) == ["Rex"]
        assert len(master.captured_queries) == 0
    finally:
        finished(process)
    assert animals_on(two_servers, tenant) == ["Rex"]
