"""The benchmark's Markdown report: the figures and sections each measure adds, and the file written.

docs/performance.md, or var/performance-quick.md in quick mode.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from bench.common import GUNICORN_THREADS, GUNICORN_WORKERS, Params
from m3saas.identifiers import is_digits


@dataclass
class Report:
    params: Params
    command: str
    started: datetime
    machine: str = ""
    mariadb: str = ""
    settings: dict[str, Any] = field(default_factory=dict)
    sections: list[tuple[str, list[str]]] = field(default_factory=list)
    summary: list[tuple[str, str, str, str]] = field(default_factory=list)  # figure, result, target, met
    load_before: str = ""
    load_after: str = ""

    def figure(self, name: str, result: str, target: str = "", met: bool | None = None) -> None:
        verdict = "" if met is None else ("yes" if met else "**no**")
        self.summary.append((name, result, target, verdict))
        print(
            f"[bench] FIGURE {name}: {result}" + (f"  (target {target}: {verdict or '-'})" if target else ""),
            flush=True,
        )

    def section(self, title: str, lines: list[str]) -> None:
        self.sections.append((title, lines))

    def markdown(self) -> str:
        p = self.params
        out = [
            "# Performance",
            "",
            "What tenancy costs, measured by `bench/run.py` against the limits set in issue 7.",
            "This file is written by the benchmark; rerun it rather than editing the figures by hand.",
            "",
            f"- **Date**: {self.started:%Y-%m-%d %H:%M} UTC",
            f"- **Command**: `{self.command}`" + (" (quick mode: small sizes, for CI)" if p.quick else ""),
            f"- **Machine**: {self.machine}; load average {self.load_before} before, {self.load_after} after",
            f"- **Database**: MariaDB {self.mariadb} on 127.0.0.1:3306 (the same server for every figure)",
            f"- **Server**: gunicorn {self.settings.get('gunicorn', '?')}, `m3saas.wsgi:application`, gthread, "
            f"{GUNICORN_WORKERS} workers x {GUNICORN_THREADS} threads, DEBUG off, per-process memory cache",
            f"- **Load**: `bench/loadgen.py` in its own process: {p.concurrency} keep-alive HTTP/1.1 connections "
            f"(reopened every 100 requests; figure 1: 16 and 1, and `wrk` as well), closed loop, {p.rounds} round(s) "
            f"of {p.duration:g} s per variant after {p.warmup:g} s of warm-up, variants alternating within a round",
            "- **Settings**: "
            + ", ".join(f"`{k}={v}`" for k, v in self.settings.items() if k.startswith(("TENANT_", "AUTO_"))),
            "",
            "Timings are compared within one run: the machine is shared and noisy, so read ratios, not absolutes.",
            "",
            "## Summary",
            "",
            "| figure | result | target | met |",
            "| --- | --- | --- | --- |",
            *(
                f"| {name} | {result} | {target} | {met} |"
                for name, result, target, met in sorted(self.summary, key=_number)
            ),
            "",
        ]
        for title, lines in sorted(self.sections, key=_number):
            out += [f"## {title}", "", *lines, ""]
        out += [line.rstrip() for line in NOTES.strip("\n").splitlines()]
        return "\n".join(out) + "\n"

    def write(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.markdown())


def _number(item: tuple[Any, ...]) -> int:
    """The figure number a summary row or section title starts with (`"2. …"` → 2)."""
    head = item[0].split(".", 1)[0]
    return int(head) if is_digits(head) else 99


NOTES = """
## How it is measured

- `bench/run.py` writes a throw-away config (master database `m3bench<run id>_master` on the local
  MariaDB, root account), migrates the master, and creates every tenant through the production
  services (`tenant_create`, `tenants_migrate_all`, `tenant_provision`); subscriptions are
  `subscriptions.models.Subscription` rows. Tenant databases and users are named
  `m3bench<run id>_t0001`…; all of them and the master are dropped at the end, also after a failure
  (`python -m bench.run --sweep` drops what a killed run left).
- Each tenant subscribes to `test` v1 and holds the same 10 animals (ids 1-10). The plain baseline
  is `bench/views.py`: the same `Animal` model and `AnimalOutputSerializer`, reading the same 10 rows
  from a `test_v1_animal` table in the master database (`.using("default")`), with no tenant
  resolved. It is mounted by `bench/urls.py` (production URLs plus that one route), loaded through
  `bench/plain_settings.py` (production settings with that URLconf); production never includes it.
  The tenant middleware stays installed for both routes: on the plain route it stops after one
  regular-expression miss, the same test every non-tenant URL pays in production.
- Both routes run in the same gunicorn, at the same time of the run, against the same database
  server, driven by the same load generator; the load generator shares the 2 CPUs with the server
  and MariaDB, so absolute throughput is lower than on a dedicated client.
- Latency is client-side, per request, including the client's own overhead; p50/p99 are nearest-rank
  percentiles over every request of every round.
- Worker memory is VmRSS of each gunicorn worker from `/proc`, after the few-tenant block and after
  the many-tenant block of the first round; the growth is scaled to 1,000 tenants.
- Open connections are sampled about every 20 ms from `information_schema.PROCESSLIST` during the
  load (tenant users `m3bench<run id>_…`, and connections on the master database). The server lists
  a connection until it has processed the client's quit, so a sample can catch one that the worker
  has already closed; `tests/test_tenancy_scale.py` checks the bound on the worker's side (a thread
  closes before it opens), and the table counts the samples above the bound.
- Statements per request are counted in-process with Django's test client and
  `CaptureQueriesContext` on the master and the tenant connections (the same code as under gunicorn).
- Figure 1 also drives the routes with `wrk` (installed by `make bench` as root: `bench-deps`),
  whose client costs far less CPU than the Python load generator, at 16 and at 1 connection, and
  counts instructions per request under callgrind (`bench/profile.py --callgrind`, when valgrind
  and a C compiler are installed): in one process, so without gunicorn's own work, but the same
  on a loaded machine as on a quiet one.
- *worker CPU ms/req* is the CPU time (user + system, `/proc`) the gunicorn workers used during the
  measurement, divided by the requests: other load on the machine barely moves it, so it is the
  steadiest figure here. *MariaDB CPU ms/req* and *server logins/req* (`SHOW GLOBAL STATUS LIKE
  'Connections'`) are server-wide: other clients of the same server add to them.

## What was profiled and fixed

Profiled with cProfile and wall-clock instrumentation of the request path in-process (the
`bench/run.py` set-up, requests through Django's WSGI handler), then confirmed under gunicorn:

- **Every request walked every registered tenant.** Django's `connections.all(initialized_only=True)`
  probes the thread-local store once per alias in `DATABASES` and runs three times per request
  (`close_old_connections` at start and end, `reset_queries`), plus once in our connection trim.
  A worker that had served 1,000 tenants paid about 5 ms per request for it, even on non-tenant
  routes. `m3saas/tenancy/connections.py` now installs a `TenantConnectionHandler` that tracks each
  thread's own wrappers, so this is O(open connections).
- **The tenant cache held 300 tenants.** Django's per-process default cache (`locmem`) keeps 300
  entries, so with 1,000 tenants most "warm" requests re-read the tenant and its subscriptions from
  the master (three queries). `m3saas/tenancy/cache.py` keeps the current generation's values in the
  process itself (bounded, still invalidated through the shared generation key).
- **The connection bound was exceeded inside a request**: the trim ran after the response, so a
  request could hold bound + 1 connections (peak 40 for a bound of 32). The middleware now makes room
  before the request, and the trims close the least recently used connection instead of an arbitrary one.
- **Closed wrappers cost a query each time.** A closed tenant wrapper is parked (up to 1,024 per thread,
  about 3 KiB each) instead of dropped, so reconnecting skips Django's per-wrapper server query
  (`SELECT VERSION(), @@sql_mode, …`); this is most of the worker memory growth per 1,000 tenants.
- `module_names()` is cached like the other module registries.
- Issue 16 (hand-written section *Where the tenant route's CPU goes* of docs/performance.md): one
  master-generation read per request instead of one per cached read, one registration of the
  tenant's alias per request, the version segment parsed once.

## What limits the figures

- **Scale in tenants (figure 2)** is bounded by database logins. Per-tenant database users (the
  isolation the design asks for) mean a connection serves one tenant; bounded connections (so that
  MariaDB's `max_connections` holds whatever the number of tenants) mean that a worker thread serving
  many tenants logs in again for most requests. A login measured with the raw client costs about
  0.5-0.7 ms of wall time on this machine (TCP, handshake, authentication, `init_command`, the
  isolation-level statement); re-authenticating an open connection (`COM_CHANGE_USER`) measured only
  about 20 % cheaper, so a pool of switchable connections would not close the gap. Raising
  `TENANT_MAX_OPEN_CONNECTIONS` helps only while a thread's share of the tenants fits in it. With the
  database on the same machine, a login over the Unix socket (config host `localhost`) measured about
  25 % cheaper than over TCP with the raw client; through Django (`python -m bench.profile --logins`:
  connect, `init_command`, session set-up, close; 6 alternating blocks of 100, load average 13-20)
  18 % less wall time (9.0 against 11.1 ms on that loaded machine) and 21 % less client CPU (0.33
  against 0.43 ms). That is a setting of the installation (the config's host), not code.
- **A process-wide pool of idle tenant connections** (issue 16's idea) was simulated before it was
  built, with the benchmark's own request mixes and bounds (2 workers x 4 threads, 4 connections a
  thread, least recently used closed first) against one pool of 16 per worker that any thread may
  take from: the share of requests finding their tenant's connection open goes from 0.40 to 1.00
  over 10 tenants, from 0.004 to 0.016 over 1,000 uniform, and from 0.16 to 0.39 for the Zipf mix.
  Uniform over 1,000 tenants, almost every request still logs in; over 10 the pool removes the
  logins that remain, so the figure-2 ratio (1,000 against 10) would grow, not shrink. It would
  help a skewed mix (about a quarter fewer logins); it was not built in this change (the isolation
  tests it needs, and its measurement under gunicorn, did not fit).
  Ways to go further, none of them done here: put requests for the same tenant on the same worker
  (a tenant-aware load balancer), or give up per-tenant database users for one shared user with
  `USE <tenant>` (cheaper, but one SQL injection away from every tenant's data).
- **Request overhead (figure 1)**: what is left is about 2.5 % of a request's instructions without a
  key and 3 % with one (callgrind): the module URL mount (one `include` level more than the plain
  route; only the mount a path names is asked), the tenant context, Django's router and per-alias
  connection look-ups, the connection bookkeeping, the traffic counter, the rate limit counters and,
  with a key, its digest and checks; a warm route's tenant, version and state checks, and a key
  already verified, are remembered per master generation. It does not grow with the number of
  tenants or modules. The rate limit counter is a cache round trip once per share (1/256 of the limit), not
  per request. Under gunicorn the same code costs the worker thread about twice its share of
  instructions in CPU time (the interleaved rows of figure 1).
- The load generator, gunicorn and MariaDB share the same CPUs, and other processes on the machine
  add noise; compare the figures of one run with each other, not across machines.
"""
