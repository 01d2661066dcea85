"""Figure 7: tenants placed over two database servers by capacity, and what provisioning them costs.

The second server is `--db2-host/--db2-port` (default 127.0.0.1:3307, the tests' second
MariaDB; started for the run when nothing answers there and `mariadbd` is installed). During
figures 1-6 it is `closed`, so they measure one server as before.
"""

from __future__ import annotations

import math
import secrets
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import BenchError, log, timed
from bench.measures import migrate_all
from bench.server import Run
from bench.system import MariaDBAdmin

SECOND = "db2"


def second_server_ensure(db2: dict[str, Any]) -> Any:
    """The second server's process handle when this run started it (None: it was already up)."""
    from tests.mariadb_second import answers, missing_tools, start

    if answers(db2["host"], db2["port"]):
        return None
    problem = missing_tools()
    if problem or db2["host"] not in ("127.0.0.1", "localhost"):
        raise BenchError(
            f"figure 7 needs a second MariaDB at {db2['host']}:{db2['port']}: {problem or 'not answering'}"
        )
    log(f"starting a second MariaDB on {db2['port']} for figure 7")
    return start(Path(tempfile.mkdtemp(prefix="m3bench-mariadb2-")), port=int(db2["port"]))


def second_server_close() -> None:
    """Figures 1-6 measure one server: the second takes no tenant until figure 7 opens it."""
    from tenants.models import DatabaseServer
    from tenants.servers import servers_sync

    servers_sync()
    DatabaseServer.objects.filter(name=SECOND).update(state=DatabaseServer.State.CLOSED)


def placement_measure(run: Run, db2_admin: MariaDBAdmin) -> None:
    from django.db import transaction

    from m3saas.servers import DEFAULT_SERVER
    from m3saas.tenancy.cache import master_cache_invalidate
    from subscriptions.models import Module, Subscription
    from tenants.models import DatabaseServer
    from tenants.servers import server_list
    from tenants.services import tenant_create

    n = run.params.tenants
    before = {s.name: s.tenants for s in server_list()}
    # Room for 60% of the new tenants on each: the most-free rule has to balance them.
    room = math.ceil(n * 0.6)
    DatabaseServer.objects.filter(name=DEFAULT_SERVER).update(capacity=before.get(DEFAULT_SERVER, 0) + room)
    DatabaseServer.objects.filter(name=SECOND).update(capacity=room, state=DatabaseServer.State.OPEN)
    names = [f"{run.prefix}_p{i:04d}" for i in range(1, n + 1)]
    began = time.perf_counter()
    with timed(f"{n} tenants registered and placed (tenant_create)") as registering:
        rows = [tenant_create(name=name, user=name, password=secrets.token_hex(8), provision=False) for name in names]
    module = Module.objects.get(name="test")
    with transaction.atomic(using="default"):
        Subscription.objects.bulk_create([Subscription(tenant=row, module=module, version=1) for row in rows])
    master_cache_invalidate()
    with timed(f"{n} tenant databases created on their servers and migrated") as creating:
        migrate_all(f"figure 7: {n} placed tenants")
    total = time.perf_counter() - began
    after = {s.name: s.tenants for s in server_list()}
    split = {name: after.get(name, 0) - before.get(name, 0) for name in (DEFAULT_SERVER, SECOND)}
    like = f"{run.prefix}_p%"
    physical = {
        DEFAULT_SERVER: len(run.admin.execute("SHOW DATABASES LIKE %s", (like,))),
        SECOND: len(db2_admin.execute("SHOW DATABASES LIKE %s", (like,))),
    }
    if physical != split:
        raise BenchError(f"figure 7: the master says {split}, the servers hold {physical}")
    log(f"figure 7: split {split} in {total:.1f} s")
    run.report.figure(
        f"7. place {n} tenants over two servers (capacity {room} each)",
        f"{split[DEFAULT_SERVER]} / {split[SECOND]} ({DEFAULT_SERVER} / {SECOND}); "
        f"{total:.1f} s ({total * 1000 / n:.1f} ms per tenant)",
    )
    run.report.section(
        "7. Placement over two servers",
        [
            f"A second MariaDB ({SECOND}, `{db2_admin.params['host']}:{db2_admin.params['port']}`) is declared in the "
            f"config's `tenants.servers`. Each server was given room for {room} new tenants; {n} tenants were then "
            "made one by one with `tenant_create` (which places each on the open server with the most free "
            "capacity), subscribed to `test` v1, and `tenants_migrate_all` created their databases, users and "
            "tables on their servers.",
            "",
            "| step | seconds | ms per tenant |",
            "| --- | --- | --- |",
            f"| register and place {n} tenants | {registering():.1f} | {registering() * 1000 / n:.1f} |",
            f"| create and migrate their databases on their servers | {creating():.1f} | {creating() * 1000 / n:.1f} |",
            f"| **total** | **{total:.1f}** | **{total * 1000 / n:.1f}** |",
            "",
            f"Split: {split[DEFAULT_SERVER]} tenants on `{DEFAULT_SERVER}`, {split[SECOND]} on `{SECOND}`, "
            "as the master records them and as `SHOW DATABASES` on each server finds them.",
        ],
    )
