"""Figure 8: the time to move a tenant of 10,000 rows to the second server (`tenants.moves.tenant_move`).

Runs after figure 7 on the same two servers: a tenant of `test` v1 is made on the default server,
given `MOVED_ROWS` animals, and moved `MOVES` times between the servers by the production
service, step by step; after each move its rows are counted on the target with the admin
account. Writes are refused from the freeze to the end of the switch: that window is reported
apart from the whole move.
"""

from __future__ import annotations

import secrets
import statistics
import time
from typing import Any

from bench.common import BenchError, log
from bench.placement import SECOND
from bench.server import Run
from bench.system import MariaDBAdmin

MOVED_ROWS = 10_000
# Moves timed, alternating between the two servers.
MOVES = 5


def move_measure(run: Run, db2_admin: MariaDBAdmin) -> None:
    from django.db import connections

    from m3saas.servers import DEFAULT_SERVER
    from modules.test.v1.models import Animal
    from subscriptions.models import Module, Subscription
    from tenants.models import DatabaseServer
    from tenants.moves import tenant_move
    from tenants.selectors import tenant_info_fresh
    from tenants.services import tenant_create, tenant_provision

    # Figure 7 filled both servers to the capacities it set: room for this one tenant, anywhere.
    DatabaseServer.objects.filter(name__in=[DEFAULT_SERVER, SECOND]).update(capacity=0, state=DatabaseServer.State.OPEN)
    name = f"{run.prefix}_move"
    row = tenant_create(name=name, user=name, password=secrets.token_hex(8), provision=False, server=DEFAULT_SERVER)
    Subscription.objects.create(tenant=row, module=Module.objects.get(name="test"), version=1)
    tenant = tenant_info_fresh(tenant_id=row.pk)
    tenant_provision(tenant=tenant)
    Animal.objects.using(tenant.alias).bulk_create(
        [Animal(name=f"animal {i}") for i in range(MOVED_ROWS)], batch_size=1000
    )
    connections[tenant.alias].close()

    # Back and forth: the later moves find the tenant's retired copy on the target and copy over it.
    servers = [SECOND, DEFAULT_SERVER] * ((MOVES + 1) // 2)
    totals: list[float] = []
    refused: list[float] = []
    steps: dict[str, list[float]] = {}
    move_ids: list[int | None] = []
    for target in servers[:MOVES]:
        marks: list[tuple[str, float]] = []
        began = time.perf_counter()
        result = tenant_move(
            tenant=tenant_info_fresh(tenant_id=row.pk),
            target=target,
            on_step=lambda step, marks=marks: marks.append((step, time.perf_counter())),  # type: ignore[misc]
        )
        totals.append(time.perf_counter() - began)
        move_ids.append(result.move_id)
        found = _count(db2_admin if target == SECOND else run.admin, name)
        if found != MOVED_ROWS:
            raise BenchError(f"figure 8: {found} rows on {target} after move #{result.move_id}, not {MOVED_ROWS}")
        for step, seconds in _durations(marks, end=began + totals[-1]):
            steps.setdefault(step, []).append(seconds)
        # Writes answer 503 from the freeze until the switch has committed (the retire step begins).
        refused.append(dict(marks)["retire"] - dict(marks)["freeze"])
    median, window = statistics.median(totals), statistics.median(refused)
    log(f"figure 8: {MOVED_ROWS} rows moved {len(totals)} times, median {median:.2f} s (writes refused {window:.2f} s)")
    run.report.figure(
        f"8. move a tenant of {MOVED_ROWS:,} rows to another server",
        f"median {median:.2f} s, max {max(totals):.2f} s over {len(totals)} moves (writes refused: median "
        f"{window:.2f} s)",
    )
    run.report.section(
        "8. Moving a tenant",
        [
            f"One tenant of `test` v1 holding {MOVED_ROWS:,} rows, moved {len(totals)} times between "
            f"`{DEFAULT_SERVER}` and `{SECOND}` (`{db2_admin.params['host']}:{db2_admin.params['port']}`, the first "
            f"to `{SECOND}`) by "
            "`tenants.moves.tenant_move`, as `manage.py move_tenant` does: freeze (the moving mark, the source's "
            "grants, its sessions ended), copy (the target's database, user and grant, then `mysqldump "
            "--single-transaction` streamed into `mysql`; from the second move on, over the tenant's retired copy "
            "there), verify (row counts and `CHECKSUM TABLE` per table on both servers), switch, retire (the source "
            "user's privileges). After each move the rows were counted on the target with its admin account.",
            "",
            "| step | median s (max) |",
            "| --- | --- |",
            *(f"| {step} | {statistics.median(v):.3f} ({max(v):.3f}) |" for step, v in steps.items()),
            f"| **whole move** | **{median:.3f} ({max(totals):.3f})** |",
            f"| writes refused (freeze to the switch's commit) | {window:.3f} ({max(refused):.3f}) |",
            "",
            "Reads were served throughout; writes answered 503 `tenant_moving` with `Retry-After` for the window "
            "above. Both servers run on this machine, so the copy crosses no network: between hosts, add the "
            "transfer of the dump.",
        ],
    )


def _count(admin: MariaDBAdmin, database: str) -> int:
    rows: list[Any] = admin.execute(f"SELECT COUNT(*) FROM `{database}`.test_v1_animal")  # noqa: S608
    return int(rows[0][0])


def _durations(marks: list[tuple[str, float]], *, end: float) -> list[tuple[str, float]]:
    """Each step's seconds: from its start to the next one's (the last one's to `end`)."""
    return [(step, (marks[i + 1][1] if i + 1 < len(marks) else end) - at) for i, (step, at) in enumerate(marks)]
