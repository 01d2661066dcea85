"""Each figure of the benchmark: what it drives, what it measures, the figure and section it reports.

1 request overhead, 2 scale in tenants, 3 provisioning, 4 migrating many tenants, 5 statements
per request; throughput, worker CPU per request and latency percentiles come from `load`.
"""

from __future__ import annotations

import json
import os
import random
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from bench.common import BASE_DIR, GUNICORN_THREADS, GUNICORN_WORKERS, PLAIN_PATH, ROWS, BenchError, log, timed
from bench.meter import HEADER as METER_HEADER
from bench.meter import meter_read
from bench.server import Run, die_with_parent, http_get, server_log_tail
from bench.system import ConnectionSampler, child_pids, cpu_seconds, rss_mib
from bench.wrk import wrk_path, wrk_run


def percentile(values: list[float], pct: float) -> float:
    """Nearest-rank percentile of `values`."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * pct // 100))
    return ordered[int(rank) - 1]


@dataclass
class LoadResult:
    """Requests driven in one or more rounds, pooled."""

    label: str
    requests: int = 0
    elapsed: float = 0.0
    latencies_ms: list[float] = field(default_factory=list)
    rounds: list[float] = field(default_factory=list)  # throughput of each round
    cpu_rounds: list[float] = field(default_factory=list)  # worker CPU ms per request of each round
    busiest_rounds: list[float] = field(default_factory=list)  # the busiest worker's share of that CPU
    p50_rounds: list[float] = field(default_factory=list)
    p99_rounds: list[float] = field(default_factory=list)
    worker_cpu: float = 0.0  # seconds of CPU used by the gunicorn workers
    db_cpu: float | None = 0.0  # seconds of CPU used by MariaDB (None: not on this machine)
    logins: int = 0  # connections the database server accepted (any client)

    def add(self, raw: dict[str, Any]) -> None:
        self.requests += raw["requests"]
        self.elapsed += raw["elapsed"]
        latencies = raw.get("latencies_ms")
        if latencies is not None:  # the Python load generator: every latency
            self.latencies_ms.extend(latencies)
            self.p50_rounds.append(percentile(latencies, 50))
            self.p99_rounds.append(percentile(latencies, 99))
        else:  # wrk: its percentiles
            self.p50_rounds.append(raw["p50"])
            self.p99_rounds.append(raw["p99"])
        self.rounds.append(raw["requests"] / raw["elapsed"] if raw["elapsed"] else 0.0)
        self.cpu_rounds.append(raw["worker_cpu"] * 1000 / raw["requests"])
        self.busiest_rounds.append(raw["busiest_worker"])
        self.worker_cpu += raw["worker_cpu"]
        self.db_cpu = None if self.db_cpu is None or raw["db_cpu"] is None else self.db_cpu + raw["db_cpu"]
        self.logins += raw["logins"]

    def per_request_ms(self, seconds: float | None) -> str:
        return "-" if seconds is None or not self.requests else f"{seconds * 1000 / self.requests:.2f}"

    @property
    def throughput(self) -> float:
        return self.requests / self.elapsed if self.elapsed else 0.0

    @property
    def p50(self) -> float:
        """Over every request of every round; with wrk (no single latencies), the median of the rounds'."""
        return percentile(self.latencies_ms, 50) if self.latencies_ms else statistics.median(self.p50_rounds)

    @property
    def p99(self) -> float:
        return percentile(self.latencies_ms, 99) if self.latencies_ms else statistics.median(self.p99_rounds)

    def row(self) -> list[str]:
        per_round = ", ".join(f"{r:.0f}" for r in self.rounds)
        return [
            self.label,
            f"{self.requests}",
            f"{self.throughput:.0f}",
            per_round,
            f"{self.p50:.2f}",
            f"{self.p99:.2f}",
            self.per_request_ms(self.worker_cpu),
            ", ".join(f"{c:.3f}" for c in self.cpu_rounds),
            self.per_request_ms(self.db_cpu),
            f"{self.logins / self.requests:.2f}" if self.requests else "-",
        ]


# ---------------------------------------------------------------------------------------------
# The load


def load(
    run: Run,
    paths: list[str],
    *,
    duration: float,
    max_requests: int = 10_000_000,
    seed: int = 0,
    headers: dict[str, str] | None = None,
    concurrency: int | None = None,
    client: str = "loadgen",
    requests: list[tuple[str, dict[str, str]]] | None = None,
) -> dict[str, Any]:
    """Drive `paths` from the load generator's own process (`client`: "loadgen", or "wrk" for one
    path), or `requests` ((path, headers) pairs) in a cycle instead; add the server side's CPU and
    logins, and with `requests`, what `bench/meter.py` counted per variant (`meter`: requests and
    CPU seconds)."""
    assert run.server is not None
    workers = child_pids(run.server.pid)
    metered = meter_read(run.meter_file) if requests else None
    db_pid = run.admin.local_pid()
    worker_before = {pid: cpu_seconds(pid) for pid in workers}
    db_cpu = cpu_seconds(db_pid) if db_pid else None
    logins = run.admin.logins()
    connections = concurrency or run.params.concurrency
    if client == "wrk":
        (path,) = [requests[0][0]] if requests else paths
        try:
            raw: dict[str, Any] = wrk_run(
                port=run.port,
                path=path,
                connections=connections,
                duration=duration,
                headers=headers or {},
                requests=requests,
            )
        except (OSError, RuntimeError, subprocess.TimeoutExpired) as exc:
            raise BenchError(f"wrk failed: {exc}") from exc
    else:
        spec = {
            "host": "127.0.0.1",
            "port": run.port,
            "paths": paths,
            "concurrency": connections,
            "duration": duration,
            "max_requests": max_requests,
            "seed": seed,
            "headers": headers or {},
            "requests": [list(r) for r in requests or []],
        }
        done = subprocess.run(
            [sys.executable, "-m", "bench.loadgen"],
            input=json.dumps(spec).encode(),
            capture_output=True,
            cwd=BASE_DIR,
            timeout=duration + 300,
            check=False,
            preexec_fn=die_with_parent,
        )
        if done.returncode != 0:
            raise BenchError(f"load generator failed: {done.stderr.decode(errors='replace')[-2000:]}")
        raw = json.loads(done.stdout)
    raw["logins"] = run.admin.logins() - logins - 1  # minus the admin connection that read the counter
    used = [cpu_seconds(pid) - before for pid, before in worker_before.items()]
    raw["worker_cpu"] = sum(used)
    # wrk opens its connections once and keeps them: gunicorn may give most of them to one worker,
    # whose threads then contend for its interpreter (more CPU per request, half the throughput).
    raw["busiest_worker"] = max(used) / sum(used) if sum(used) > 0 else 0.0
    raw["db_cpu"] = cpu_seconds(db_pid) - db_cpu if db_pid and db_cpu is not None else None
    if metered is not None:  # an interleaved load: what each variant cost
        time.sleep(0.2)  # a worker thread counts a request just after answering it
        raw["meter"] = [
            (n - n0, (ns - ns0) / 1e9) for (n, ns), (n0, ns0) in zip(meter_read(run.meter_file), metered, strict=True)
        ]
    if child_pids(run.server.pid) != workers:
        raise BenchError(f"a gunicorn worker restarted during the load: {server_log_tail(run)}")
    if raw["errors"]:
        raise BenchError(f"{raw['errors']} failed request(s), first: {raw['first_error']}; {server_log_tail(run)}")
    if not raw["requests"]:
        raise BenchError("the load generator completed no request")
    return raw


def tenant_path(info: Any) -> str:
    return f"/{info.id}/test/v1/animals"


def bodies_check(run: Run, paths: list[str]) -> None:
    """Every variant serves the same 10 rows: plain, and a sample of tenants."""
    status, expected = http_get(run.port, PLAIN_PATH)
    if status != 200 or len(json.loads(expected)) != ROWS:
        raise BenchError(f"plain view: HTTP {status}, {expected[:200]!r}")
    for path in paths:
        status, body = http_get(run.port, path)
        if status != 200 or json.loads(body) != json.loads(expected):
            raise BenchError(f"{path}: HTTP {status}, {body[:200]!r} differs from the plain view's rows")


def load_table(results: list[LoadResult]) -> list[str]:
    return [
        "| variant | requests | req/s | req/s per round | p50 ms | p99 ms | worker CPU ms/req "
        "| per round | MariaDB CPU ms/req | server logins/req |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
        *("| " + " | ".join(r.row()) + " |" for r in results),
    ]


def workers_rss(run: Run) -> list[float]:
    assert run.server is not None
    return [rss_mib(pid) for pid in child_pids(run.server.pid)]


# ---------------------------------------------------------------------------------------------
# Figure 1: request overhead


# A load whose busiest worker used more than this share of the workers' CPU is reported as lopsided.
LOPSIDED_SHARE = 0.75


def overhead_measure(run: Run) -> None:
    """Figure 1: one tenant's list, with and without its API key, against the plain view.

    For each client (the Python load generator, wrk) and number of connections (`--clients`), the three
    variants alternate within each round (order reversed every other round); a figure is the median
    over the rounds of the per-round ratio, so that a slow moment of the machine hits both sides.
    """
    p = run.params
    tenant = [tenant_path(run.tenants[0])]
    key_header = {"Authorization": f"Bearer {_api_key(run.tenants[0])}"}
    wanted = p.clients
    kept = [(client, conns) for client, conns in wanted if client != "wrk" or wrk_path()]
    blocks: list[tuple[str, int, list[tuple[LoadResult, list[str], dict[str, str]]]]] = [
        (
            client,
            conns,
            [
                (LoadResult("plain view, no tenancy"), [PLAIN_PATH], {}),
                (LoadResult(f"tenant-routed ({tenant[0]})"), tenant, {}),
                (LoadResult("tenant-routed, the tenant's API key"), tenant, key_header),
            ],
        )
        for client, conns in kept
    ]
    for r in range(p.rounds):
        for client, conns, variants in blocks:
            for result, paths, headers in variants if r % 2 == 0 else reversed(variants):
                kwargs = {"seed": r, "headers": headers, "concurrency": conns, "client": client}
                load(run, paths, duration=p.warmup, **kwargs)  # type: ignore[arg-type]
                result.add(load(run, paths, duration=p.duration, **kwargs))  # type: ignore[arg-type]
                log(
                    f"round {r + 1}: {client} x{conns}: {result.label}: {result.rounds[-1]:.0f} req/s, "
                    f"{result.cpu_rounds[-1]:.3f} ms CPU/req, p99 {result.p99_rounds[-1]:.2f} ms, "
                    f"busiest worker {result.busiest_rounds[-1]:.0%} of the CPU"
                )

    def median_ratio(a: list[float], b: list[float]) -> float:
        return statistics.median(x / y for x, y in zip(a, b, strict=True) if y)

    lines = [
        "`GET /{tenant}/test/v1/animals` (10 rows) for one tenant, without and with the tenant's API key "
        "(`Authorization: Bearer m3s_…`: the cached key, its SHA-256, the rate limit counters), against the plain "
        "view serving the same rows from the master database; same server, same run, variants alternating in "
        f"each round. Clients: {', '.join(f'{c} with {n} connection(s)' for c, n in kept)}"
        + ("" if len(kept) == len(wanted) else " (wrk is not installed: `make bench` installs it as root)")
        + ". *CPU ratio* and *req/s ratio* are "
        "plain / tenant-routed, the median over the rounds of each round's ratio; *p99 ratio* is tenant-routed / "
        "plain, the same way.",
        "",
    ]
    for client, conns, variants in blocks:
        plain, routed, keyed = (result for result, _, _ in variants)
        name = f"{client}, {conns} connection{'s' if conns > 1 else ''}"
        lines += [f"**{name}**", "", *load_table([plain, routed, keyed]), ""]
        lines += ["| compared with the plain view | CPU ratio | req/s ratio | p99 ratio |", "| --- | --- | --- | --- |"]
        for other in (routed, keyed):
            cpu = median_ratio(plain.cpu_rounds, other.cpu_rounds)
            rps = median_ratio(other.rounds, plain.rounds)
            p99 = median_ratio(other.p99_rounds, plain.p99_rounds)
            lines.append(f"| {other.label} | {cpu:.3f} | {rps:.3f} | {p99:.2f} |")
            keyed_label = " with the API key" if other is keyed else ""
            run.report.figure(
                f"1. plain / tenant-routed{keyed_label} worker CPU per request, {name}",
                f"{cpu:.3f} ({other.per_request_ms(other.worker_cpu)} vs {plain.per_request_ms(plain.worker_cpu)} ms); "
                f"req/s {rps:.3f} ({statistics.median(other.rounds):.0f} vs {statistics.median(plain.rounds):.0f})",
                ">= 0.95",
                cpu >= 0.95,
            )
            if conns >= 16:
                run.report.figure(
                    f"1. p99 tenant-routed{keyed_label} / plain, {name}",
                    f"{p99:.2f} ({statistics.median(other.p99_rounds):.2f} vs "
                    f"{statistics.median(plain.p99_rounds):.2f} ms)",
                    "<= 1.2",
                    p99 <= 1.2,
                )
        lines.append("")
    lopsided = [
        f"{client} x{conns} {result.label} round {r + 1} ({share:.0%})"
        for client, conns, variants in blocks
        for result, _, _ in variants
        for r, share in enumerate(result.busiest_rounds)
        if conns > 1 and share > LOPSIDED_SHARE  # one connection is served by one worker anyway
    ]
    lines += [
        f"Loads of several connections where one of the {GUNICORN_WORKERS} workers used more than "
        f"{LOPSIDED_SHARE:.0%} of the workers' CPU (wrk opens its connections once, and gunicorn may give "
        "most of them to one worker, whose threads then contend for its interpreter: more CPU per request "
        "and about half the throughput, whatever the route): "
        + ("; ".join(lopsided) if lopsided else "none")
        + ". The interleaved figures below are immune: every variant shares the same connections.",
        "",
    ]
    lines += _interleaved_measure(run, kept, tenant[0], key_header)
    if p.callgrind:
        lines += _instructions_measure(run)
    lines += [
        "Worker CPU per request is what the gunicorn workers used (`/proc`), divided by the requests served: the "
        "steadiest figure on a shared machine, as other processes slow the requests down but do not add to it. "
        "Req/s and latency include the client and MariaDB on the same 2 CPUs and whatever else runs there.",
    ]
    run.report.section("1. Request overhead", lines)


def _interleaved_measure(run: Run, clients: list[tuple[str, int]], path: str, key_header: dict[str, str]) -> list[str]:
    """Figure 1 again, the three variants interleaved request by request in one load: each
    request's CPU in the worker thread that served it, from `bench/meter.py`. A fourth sends the
    plain view the same `Authorization` header (which it ignores): what parsing that header costs
    the server, apart from what checking the key costs."""
    p = run.params
    labels = [
        "plain view, no tenancy",
        f"tenant-routed ({path})",
        "tenant-routed, the tenant's API key",
        "plain view, sent the same key",
    ]
    accept = {"Accept": "application/json"}
    requests = [
        (PLAIN_PATH, {**accept, METER_HEADER: "0"}),
        (path, {**accept, METER_HEADER: "1"}),
        (path, {**accept, METER_HEADER: "2", **key_header}),
        (PLAIN_PATH, {**accept, METER_HEADER: "3", **key_header}),
    ]
    cpu: dict[tuple[str, int], list[list[float]]] = {c: [[] for _ in labels] for c in clients}
    served: dict[tuple[str, int], list[int]] = {c: [0 for _ in labels] for c in clients}
    # The load generator's latencies per variant, p99 of each round (wrk reports them pooled only).
    p99: dict[tuple[str, int], list[list[float]]] = {c: [[] for _ in labels] for c in clients if c[0] == "loadgen"}
    for r in range(p.rounds):
        for client, conns in clients if r % 2 == 0 else list(reversed(clients)):
            kwargs: dict[str, Any] = {"seed": r, "concurrency": conns, "client": client, "requests": requests}
            load(run, [], duration=p.warmup, **kwargs)
            raw = load(run, [], duration=p.duration, **kwargs)
            unmarked = raw["meter"][-1][0]
            if unmarked:
                raise BenchError(f"{unmarked} request(s) reached the server without their {METER_HEADER}")
            for i in range(len(labels)):
                count, seconds = raw["meter"][i]
                if not count:
                    raise BenchError(f"no request of variant {i} ({labels[i]}) was counted by the meter")
                cpu[(client, conns)][i].append(seconds / count * 1e6)
                served[(client, conns)][i] += count
                if (client, conns) in p99:
                    p99[(client, conns)][i].append(percentile(raw["latencies_by_request"][str(i)], 99))
            log(
                f"round {r + 1}: interleaved, {client} x{conns}: worker-thread CPU µs/req "
                + ", ".join(f"{values[-1]:.0f}" for values in cpu[(client, conns)])
            )
    lines = [
        "**The variants interleaved request by request** (`bench/meter.py`): one load per client and round "
        "sends the plain view, the tenant route, the keyed route and the plain view with the same "
        "`Authorization` header (which it ignores) in turn on each connection (wrk: on each of its threads), "
        "so a slow moment of the machine falls on all of them alike. The figure is "
        "the CPU each request used in the worker thread that served it (the thread's own CPU clock, "
        "read when gunicorn has answered, from parsing the request to writing the response), per "
        "variant; the workers' main thread, which accepts and polls connections the same way for "
        "every variant, is not in it. *Ratio* is plain / the variant, the median over the rounds of "
        "each round's ratio; *keyed vs plain with the header* compares the keyed route with the plain view "
        "sent the same header, leaving out what parsing the header costs any view.",
        "",
        "| client | plain µs/req | tenant-routed µs/req | keyed µs/req | plain, with the header µs/req | ratio "
        "| keyed ratio | keyed vs plain with the header | ratios per round (tenant / keyed) |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for client, conns in clients:
        name = f"{client}, {conns} connection{'s' if conns > 1 else ''}"
        plain, routed, keyed, plain_keyed = cpu[(client, conns)]
        ratios = [statistics.median(a / b for a, b in zip(plain, other, strict=True)) for other in (routed, keyed)]
        header_apart = statistics.median(a / b for a, b in zip(plain_keyed, keyed, strict=True))
        per_round = "; ".join(f"{a / b:.3f} / {a / c:.3f}" for a, b, c in zip(plain, routed, keyed, strict=True))
        lines.append(
            f"| {name} | {statistics.median(plain):.0f} | {statistics.median(routed):.0f} | "
            f"{statistics.median(keyed):.0f} | {statistics.median(plain_keyed):.0f} | {ratios[0]:.3f} | "
            f"{ratios[1]:.3f} | {header_apart:.3f} | {per_round} |"
        )
        for label, other, ratio in (("", routed, ratios[0]), (" with the API key", keyed, ratios[1])):
            run.report.figure(
                f"1. plain / tenant-routed{label} worker-thread CPU per request, interleaved, {name}",
                f"{ratio:.3f} ({statistics.median(other):.0f} vs {statistics.median(plain):.0f} µs; "
                f"{served[(client, conns)][0]:,} plain requests counted)",
                ">= 0.95",
                ratio >= 0.95,
            )
    lines.append("")
    if p99:
        lines += [
            "p99 of each variant in the same interleaved loads (the load generator's latencies, per round), "
            "tenant-routed / plain, the median over the rounds of each round's ratio:",
            "",
            "| client | plain p99 ms | tenant-routed p99 ms | keyed p99 ms | p99 ratio | keyed p99 ratio | per round |",
            "| --- | --- | --- | --- | --- | --- | --- |",
        ]
        for (client, conns), (plain, routed, keyed, _) in p99.items():
            name = f"{client}, {conns} connection{'s' if conns > 1 else ''}"
            ratios = [statistics.median(b / a for a, b in zip(plain, other, strict=True)) for other in (routed, keyed)]
            per_round = "; ".join(f"{b / a:.2f} / {c / a:.2f}" for a, b, c in zip(plain, routed, keyed, strict=True))
            lines.append(
                f"| {name} | {statistics.median(plain):.2f} | {statistics.median(routed):.2f} | "
                f"{statistics.median(keyed):.2f} | {ratios[0]:.2f} | {ratios[1]:.2f} | {per_round} |"
            )
            if conns >= 16:
                for label, ratio in (("", ratios[0]), (" with the API key", ratios[1])):
                    run.report.figure(
                        f"1. p99 tenant-routed{label} / plain, interleaved, {name}",
                        f"{ratio:.2f}",
                        "<= 1.2",
                        ratio <= 1.2,
                    )
        lines.append("")
    return lines


def _instructions_measure(run: Run) -> list[str]:
    """Instructions per request of each variant under callgrind (`bench/profile.py --callgrind`):
    the one figure other load on the machine cannot move. Skipped without valgrind."""
    valgrind = shutil.which("valgrind")
    if valgrind is None or not shutil.which("cc"):
        return ["Instructions per request were not counted: valgrind (and a C compiler) are not installed.", ""]
    requests, blocks = (50, 1) if run.params.quick else (300, 3)
    with tempfile.TemporaryDirectory(prefix="bench-callgrind-") as tmp:
        done = subprocess.run(
            [valgrind, "--tool=callgrind", "--instr-atstart=no", sys.executable, "-m", "bench.profile",
             "--callgrind", f"--requests={requests}", f"--blocks={blocks}"],
            cwd=tmp,
            env={**os.environ, "PYTHONPATH": str(BASE_DIR)},
            capture_output=True,
            text=True,
            timeout=3600,
            check=False,
            preexec_fn=die_with_parent,
        )  # fmt: skip
    found = [line for line in done.stdout.splitlines() if line.startswith("PROFILEJSON ")]
    if done.returncode != 0 or not found:
        log(f"callgrind count failed (exit {done.returncode}): {done.stderr[-500:]}")
        return [f"Instructions per request: the callgrind run failed (exit {done.returncode}).", ""]
    per = {name: statistics.median(values) for name, values in json.loads(found[0][12:])["blocks"].items()}
    lines = [
        f"**Instructions per request** (callgrind, in one process through Django's WSGI handler as gunicorn calls it, "
        f"{blocks} alternating block(s) of {requests} warm requests per variant, median; `bench/profile.py`):",
        "",
        "| variant | instructions per request | plain / this |",
        "| --- | --- | --- |",
    ]
    labels = {"plain": "plain view", "tenant": "tenant-routed", "keyed": "tenant-routed, the tenant's API key"}
    for name, label in labels.items():
        lines.append(f"| {label} | {per[name]:,.0f} | {per['plain'] / per[name]:.3f} |")
        if name != "plain":
            run.report.figure(
                f"1. plain / {label} instructions per request (callgrind)",
                f"{per['plain'] / per[name]:.3f} ({per[name]:,.0f} vs {per['plain']:,.0f})",
                ">= 0.95",
                per["plain"] / per[name] >= 0.95,
            )
    log(f"instructions per request: {per}")
    return [*lines, ""]


def _api_key(tenant: Any) -> str:
    """A new key of `tenant`, as `manage.py tenant_key create` makes one."""
    from tenants.api_keys import api_key_create
    from tenants.models import Tenant

    return api_key_create(tenant=Tenant.objects.get(pk=tenant.id), name="bench")[1]


# ---------------------------------------------------------------------------------------------
# Figure 2: scale in tenants


# Figure 2's warm-up: requests per tenant before the rounds, and per block (see `scale_measure`).
WARM_PER_TENANT = 12
BLOCK_WARM_REQUESTS = 400


def scale_measure(run: Run) -> None:
    """Figure 2: the same request spread over few and over many tenants; memory and connections."""
    from django.db import connections

    p = run.params
    connections.close_all()  # this process's own master connection must not count
    few_paths = [tenant_path(t) for t in run.tenants[: p.few]]
    many_paths = [tenant_path(t) for t in run.tenants]
    zipf_paths = zipf_sample(many_paths, s=ZIPF_S, count=max(20 * len(many_paths), 2000), seed=7)
    few = LoadResult(f"{p.few} tenants")
    many = LoadResult(f"{len(many_paths)} tenants")
    zipf = LoadResult(f"{len(many_paths)} tenants, Zipf s={ZIPF_S}")
    # Per block: samples, peak tenant connections, samples above the bound, peak master connections,
    # samples with more than the bound's worth of the same sessions when taken again (`ConnectionSampler.recheck`).
    blocks: dict[str, list[int]] = {}
    bound = run.report.settings["TENANT_MAX_OPEN_CONNECTIONS"] * GUNICORN_THREADS * GUNICORN_WORKERS
    bodies_check(run, few_paths[:3] + many_paths[-3:])
    sampler = ConnectionSampler(run.admin, tenant_user_prefix=run.prefix, master_database=run.master, bound=bound)
    # Warm-up, once: every worker must have met every tenant before a block is measured, or the
    # blocks over many tenants pay for first meetings (master reads, a password decrypted, the owner
    # mark checked) that the few-tenant block does not. A client connection is reopened every 100
    # requests and lands on either worker, so each tenant is asked about WARM_PER_TENANT times:
    # a worker misses a given tenant with a chance of about 2^-12. (With four per tenant, as before,
    # a 10 s block over 1,000 tenants still met 67 of them for the first time, measured.) The
    # request budget ends it; the time limit only guards a server that stopped answering. Memory is
    # read after the few tenants alone, then after all of them.
    load(run, few_paths, duration=max(p.warmup, 300.0), max_requests=BLOCK_WARM_REQUESTS, seed=98)
    rss = {few.label: workers_rss(run)}
    load(run, many_paths, duration=max(p.warmup, 900.0), max_requests=WARM_PER_TENANT * len(many_paths), seed=99)
    rss[many.label] = workers_rss(run)
    with sampler:
        variants = [(few, few_paths), (many, many_paths), (zipf, zipf_paths)]
        for r in range(p.rounds):
            for result, paths in variants if r % 2 == 0 else reversed(variants):
                # Warm-up of the block's own mix: each thread's open connections as the mix leaves them.
                load(run, paths, duration=max(p.warmup, 300.0), max_requests=BLOCK_WARM_REQUESTS, seed=100 + r)
                sampler.reset()
                result.add(load(run, paths, duration=p.duration, seed=r))
                tenant_peak, master_peak = sampler.peak_tenant, sampler.peak_master
                old = blocks.get(result.label, [0, 0, 0, 0, 0])
                blocks[result.label] = [
                    old[0] + sampler.samples,
                    max(old[1], tenant_peak),
                    old[2] + sampler.over_bound,
                    max(old[3], master_peak),
                    old[4] + sampler.over_bound_held,
                ]
                log(
                    f"round {r + 1}: {result.label}: {result.rounds[-1]:.0f} req/s, "
                    f"peak connections tenants {tenant_peak} master {master_peak}"
                )
    ratio = many.p50 / few.p50
    cpu_ratio = (many.worker_cpu / many.requests) / (few.worker_cpu / few.requests)
    zipf_ratio = zipf.p50 / few.p50
    zipf_cpu_ratio = (zipf.worker_cpu / zipf.requests) / (few.worker_cpu / few.requests)
    zipf_share = zipf_top_share(zipf_paths, top=p.few)
    before, after = rss[few.label], rss[many.label]
    growth = statistics.mean(a - b for a, b in zip(after, before, strict=True))
    growth_per_1000 = growth * 1000 / (len(many_paths) - p.few)
    max_tenant_conns = max(b[1] for b in blocks.values())
    max_master_conns = max(b[3] for b in blocks.values())
    samples = sum(b[0] for b in blocks.values())
    over = sum(b[2] for b in blocks.values())
    held = sum(b[4] for b in blocks.values())
    run.report.figure(
        f"2. p50 with {len(many_paths)} tenants / with {p.few}",
        f"{ratio:.2f} ({many.p50:.2f} vs {few.p50:.2f} ms; {many.throughput:.0f} vs {few.throughput:.0f} req/s)",
        "<= 1.10 (1,000 vs 10)",
        ratio <= 1.10 if len(many_paths) >= 1000 else None,
    )
    run.report.figure(
        f"2. worker CPU per request with {len(many_paths)} tenants / with {p.few}",
        f"{cpu_ratio:.2f} ({many.per_request_ms(many.worker_cpu)} vs {few.per_request_ms(few.worker_cpu)} ms; "
        "steadier than p50 on a shared machine)",
    )
    run.report.figure(
        f"2. p50 with {len(many_paths)} tenants, Zipf s={ZIPF_S} / {p.few} tenants",
        f"{zipf_ratio:.2f} ({zipf.p50:.2f} vs {few.p50:.2f} ms; worker CPU per request {zipf_cpu_ratio:.2f}, "
        f"{zipf.per_request_ms(zipf.worker_cpu)} vs {few.per_request_ms(few.worker_cpu)} ms)",
    )
    run.report.figure(
        "2. worker memory growth per 1,000 tenants",
        f"{growth_per_1000:.1f} MiB per worker"
        + ("" if len(many_paths) - p.few >= 990 else f" (scaled from {len(many_paths) - p.few} tenants)"),
    )
    run.report.figure(
        "2. peak open tenant connections",
        f"{max_tenant_conns} with {len(many_paths)} tenants (master: {max_master_conns}); "
        f"{over} of {samples} samples above the bound, {held} of them with the same sessions still above it "
        f"{sampler.recheck * 1000:.0f} ms later",
        f"<= TENANT_MAX_OPEN_CONNECTIONS x threads x workers = {bound} (held)",
        held == 0,
    )
    run.report.section(
        "2. Scale in tenants",
        [
            f"The same request spread evenly over the first {p.few} tenants and over all {len(many_paths)} "
            "(each client connection walks its own shuffled cycle of the tenants), after a warm-up that requested "
            f"every tenant {WARM_PER_TENANT} times, so that each worker has met each tenant (with four per tenant, "
            "the warm-up before 2026-11-29 evening, the workers still met 67 tenants for the first time during a "
            "10 s block over 1,000, in 4 % of its requests, each a master read, a password decrypted and the "
            f"owner mark checked), and {BLOCK_WARM_REQUESTS} requests of the block's own mix before each block.",
            "",
            *load_table([few, many, zipf]),
            "",
            f"The Zipf mix: {len(zipf_paths)} requests drawn with probability proportional to 1/rank^{ZIPF_S} over the "
            f"{len(many_paths)} tenants (the {p.few} busiest get {zipf_share:.0%} of them, "
            f"{len(set(zipf_paths))} tenants appear), each client connection walking its own shuffled cycle of them. "
            f"Its p50 is **{zipf_ratio:.2f}** of the {p.few}-tenant p50 and its worker CPU per request "
            f"**{zipf_cpu_ratio:.2f}**; {zipf.logins / zipf.requests:.2f} logins per request.",
            "",
            f"p50 with {len(many_paths)} tenants is **{ratio:.2f}** of p50 with {p.few}, and the workers' CPU per "
            f"request **{cpu_ratio:.2f}** of it. Under a saturating closed loop on a shared 2-CPU machine, p50 follows "
            "throughput, which moves by tens of percent between rounds when other processes run (see req/s per "
            "round); the CPU ratio moves much less. What differs is the "
            f"database logins: {few.logins / few.requests:.2f} per request over {p.few} tenants, "
            f"{many.logins / many.requests:.2f} over {len(many_paths)}. Each tenant has its own database user, so a "
            "request whose tenant has no open connection in its worker thread logs in (TCP, handshake, "
            "authentication, `init_command`, Django's session set-up), and a thread keeps at most "
            f"`TENANT_MAX_OPEN_CONNECTIONS` ({run.report.settings['TENANT_MAX_OPEN_CONNECTIONS']}) open, least "
            "recently used closed first. Spread evenly over 10 tenants, a thread finds its tenant open for a fair "
            "share of requests; over 1,000, almost never. That login is the limit of this figure; see *What limits "
            "the figures* below.",
            "",
            "| | " + " | ".join(f"worker {i + 1}" for i in range(len(before))) + " |",
            "| --- | " + " | ".join("---" for _ in before) + " |",
            f"| RSS after {few.label} (MiB) | " + " | ".join(f"{v:.1f}" for v in before) + " |",
            f"| RSS after {many.label} (MiB) | " + " | ".join(f"{v:.1f}" for v in after) + " |",
            "",
            f"Growth: {growth:.1f} MiB per worker for {len(many_paths) - p.few} more tenants, "
            f"**{growth_per_1000:.1f} MiB per worker per 1,000 tenants**.",
            "",
            "| block | samples | peak tenant connections | samples above the bound | of them, the same sessions "
            f"still above it {sampler.recheck * 1000:.0f} ms later | peak master connections |",
            "| --- | --- | --- | --- | --- | --- |",
            *(f"| {label} | {n} | {t} | {o} | {h} | {m} |" for label, (n, t, o, m, h) in blocks.items()),
            "",
            "A sample above the bound is taken again a moment later: the server can still list a session a "
            "worker has just closed (the client sends `COM_QUIT` and does not wait) after the worker opened "
            "the next one. The bound is on the connections held, so the target counts only samples of which "
            "more than the bound's worth of the same sessions (by id) are still listed then, not sessions that "
            "opened and closed in between; the workers' own bound is checked by `tests/test_tenancy_scale.py`.",
            "",
            f"Bound: `TENANT_MAX_OPEN_CONNECTIONS` ({run.report.settings['TENANT_MAX_OPEN_CONNECTIONS']}) x "
            f"{GUNICORN_THREADS} threads x {GUNICORN_WORKERS} workers = {bound} tenant connections, plus at most one "
            "master connection per thread, whatever the number of tenants served.",
        ],
    )


ZIPF_S = 1.1


def zipf_sample(paths: list[str], *, s: float, count: int, seed: int) -> list[str]:
    """`count` paths drawn from `paths` with probability proportional to 1/rank^s (the first is rank 1)."""
    weights = [1 / (rank**s) for rank in range(1, len(paths) + 1)]
    return random.Random(seed).choices(paths, weights=weights, k=count)


def zipf_top_share(sample: list[str], *, top: int) -> float:
    """The share of `sample` that its `top` most frequent paths take."""
    counts = sorted(Counter(sample).values(), reverse=True)
    return sum(counts[:top]) / len(sample) if sample else 0.0


# ---------------------------------------------------------------------------------------------
# Figure 3: provisioning


def provisioning_measure(run: Run) -> None:
    from django.db import connections

    from m3saas.bookkeeping.models import SeedRecord
    from m3saas.tenancy.context import use_tenant
    from modules.test.v1.models import Animal
    from subscriptions.models import Module, Subscription
    from tenants.selectors import tenant_info_from_row
    from tenants.services import tenant_create, tenant_provision

    try:
        from m3saas import seeding  # developer A1's seeds; optional until it lands
    except ImportError:
        seeding = None  # type: ignore[assignment]

    module = Module.objects.get(name="test")
    totals: list[float] = []
    steps: dict[str, list[float]] = {"register": [], "provision": [], "seeds": []}
    seeds_by_provision = 0
    seeded_rows = 0
    base = run.params.tenants + 1
    for i in range(base, base + run.params.samples):
        name = run.tenant_name(i)
        t0 = time.perf_counter()
        row = tenant_create(name=name, user=name, password=secrets.token_hex(8), provision=False)
        Subscription.objects.create(tenant=row, module=module, version=1)
        info = tenant_info_from_row(row)
        t1 = time.perf_counter()
        applied = tenant_provision(tenant=info)
        t2 = time.perf_counter()
        with use_tenant(info):
            if SeedRecord.objects.exists():
                seeds_by_provision += 1
            elif seeding is not None:
                seeding.seeds_apply(alias=info.alias)
            seeded_rows += SeedRecord.objects.count()
        t3 = time.perf_counter()
        with use_tenant(info):
            Animal.objects.count()  # the module's table is there and reachable with the tenant's user
        connections[info.alias].close()
        if "test_v1.0001_initial" not in applied:
            raise BenchError(f"provisioning {name} did not apply test_v1.0001_initial: {applied}")
        steps["register"].append(t1 - t0)
        steps["provision"].append(t2 - t1)
        steps["seeds"].append(t3 - t2)
        totals.append(t3 - t0)

    def ms(values: list[float]) -> str:
        return f"{statistics.median(values) * 1000:.0f} ms (max {max(values) * 1000:.0f})"

    if seeding is None:
        seeds_note = "`m3saas/seeding.py` is not in the tree yet, so no seeds were applied (0 ms)."
    elif seeds_by_provision == len(totals):
        seeds_note = "Seeds were applied by `tenant_provision` itself (`m3saas.seeding`)."
    else:
        seeds_note = (
            "`tenant_provision` did not apply seeds, so the benchmark called `m3saas.seeding.seeds_apply` for the "
            "tenant database right after it (timed in the seeds step)."
        )
    median = statistics.median(totals)
    run.report.figure(
        "3. provision a tenant (register, database, user, migrations, seeds)",
        f"median {median * 1000:.0f} ms, max {max(totals) * 1000:.0f} ms over {len(totals)}",
        "< 1 s",
        median < 1.0,
    )
    run.report.section(
        "3. Provisioning",
        [
            f"{len(totals)} tenants provisioned one after the other, next to the {run.params.tenants} existing ones. "
            "Each: `tenant_create(provision=False)` and a `Subscription` to `test` v1 (register), then "
            "`tenant_provision` (database, user, grant, migrations `bookkeeping` and `test_v1`), then seeds, then one "
            "query through the tenant's own user.",
            "",
            "| step | median (max) |",
            "| --- | --- |",
            f"| register: tenant row + subscription | {ms(steps['register'])} |",
            f"| database, user, grant and migrations (`tenant_provision`) | {ms(steps['provision'])} |",
            f"| seeds | {ms(steps['seeds'])} |",
            f"| **total** | **{ms(totals)}** |",
            "",
            f"{seeds_note} Seed records found after provisioning: {seeded_rows} in total.",
        ],
    )


# ---------------------------------------------------------------------------------------------
# Figure 4: migrating many tenants


def migrate_all(label: str, *, verify: bool = False) -> tuple[float, list[Any]]:
    """Run the production all-tenants migration; fail on any tenant's failure."""
    from tenants.services import tenants_migrate_all

    began = time.perf_counter()
    results = tenants_migrate_all(verify=verify)
    seconds = time.perf_counter() - began
    failed = [r for r in results if not r.ok]
    if failed:
        raise BenchError(f"{label}: {len(failed)} tenant(s) failed, first: {failed[0].tenant}: {failed[0].error}")
    unopened = sum(1 for r in results if r.unchanged)
    log(f"{label}: {len(results)} tenants in {seconds:.2f} s ({unopened} unchanged, not opened)")
    return seconds, results


def migrate_command(label: str) -> float:
    """`manage.py migrate_tenants` in its own process, as an operator runs it: Django's start-up,
    every tenant registered before the command line is parsed, then the run."""
    began = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "manage.py", "migrate_tenants", "-v", "0"],
        cwd=BASE_DIR,
        capture_output=True,
        text=True,
        check=False,
    )
    seconds = time.perf_counter() - began
    if done.returncode != 0:
        raise BenchError(f"{label}: exit {done.returncode}: {(done.stderr or done.stdout).strip()[-500:]}")
    log(f"{label}: {seconds:.2f} s")
    return seconds


def master_queries_unchanged() -> int:
    """Master queries of an all-tenants run in which every tenant is unchanged (none opened)."""
    from django.db import connections
    from django.test.utils import CaptureQueriesContext

    from tenants.services import tenants_migrate_all

    with CaptureQueriesContext(connections["default"]) as master:
        results = tenants_migrate_all()
    if not all(r.unchanged for r in results):
        raise BenchError("a tenant was opened although its migration fingerprint was the code's")
    return len(master.captured_queries)


def tenants_create(run: Run) -> None:
    """Figure 4 and the tenants of figures 1-2: create, migrate with nothing to apply, subscribe, migrate."""
    from django.db import transaction

    from m3saas.tenancy.cache import master_cache_invalidate
    from subscriptions.models import Module, Subscription
    from tenants.models import Tenant
    from tenants.selectors import tenant_info_list
    from tenants.services import tenant_create

    n = run.params.tenants
    light = run.params.light_migrations
    with timed(f"{n} tenants registered (tenant_create, provision=False)") as registering:
        rows = [
            tenant_create(
                name=run.tenant_name(i), user=run.tenant_name(i), password=secrets.token_hex(8), provision=False
            )
            for i in range(1, n + 1)
        ]
    module, _ = Module.objects.get_or_create(name="test")

    def subscribe() -> None:
        with transaction.atomic(using="default"):
            Subscription.objects.bulk_create([Subscription(tenant=row, module=module, version=1) for row in rows])
        master_cache_invalidate()  # bulk_create sends no post_save signal

    if light:  # one run opens every database: the first, which also creates the module's table
        subscribe()
    if not run.params.measures(4):
        # Without figure 4 (`--only`): the tenants subscribed and migrated once, none of its timed runs.
        if not light:
            subscribe()
        with timed(f"{n} tenant databases and users created and migrated (tenants_migrate_all)"):
            migrate_all("first migration")
        run.tenants = [info for info in tenant_info_list() if info.name.startswith(run.prefix)]
        return
    with timed(f"{n} tenant databases and users created and migrated (tenants_migrate_all)") as creating:
        _, created = migrate_all("first migration")
    bookkeeping_applied = sorted({name for r in created for name in r.applied})
    nothing_bare = one_new = verified = None
    new_migrations: tuple[str, ...] = ()
    if not light:
        nothing_bare, results = migrate_all("all-tenants migration, nothing to apply (no module)")
        if any(r.applied for r in results):
            raise BenchError("a migration was applied on the second run: the first run left work behind")
        subscribe()
        one_new, results = migrate_all("all-tenants migration, one new migration each")
        applied = {tuple(r.applied) for r in results}
        if len(applied) != 1:
            raise BenchError(f"tenants applied different migrations: {sorted(applied)[:3]}")
        new_migrations = next(iter(applied))
    nothing, results = migrate_all("all-tenants migration, nothing to apply (test v1)")
    if any(r.applied for r in results):
        raise BenchError("a migration was applied twice")
    if not all(r.unchanged for r in results):
        raise BenchError("a tenant was opened although its migration fingerprint was the code's")
    queries = master_queries_unchanged()
    log(f"master queries of a run with nothing to apply: {queries} for {n} tenants")
    command = migrate_command("manage.py migrate_tenants, nothing to apply (test v1), own process")
    if not light:
        verified, results = migrate_all("all-tenants migration, nothing to apply, --verify", verify=True)
        if any(r.applied or r.unchanged for r in results):
            raise BenchError("--verify skipped a tenant or applied a migration")
    run.tenants = [info for info in tenant_info_list() if info.name.startswith(run.prefix)]
    assert Tenant.objects.count() == n

    def row(label: str, seconds: float) -> str:
        return f"| {label} | {seconds:.1f} | {seconds * 1000 / n:.1f} |"

    # Issue 16: < 5 s for 1,000 tenants, < 60 s for 10,000 (the command, start-up included).
    limit = 60.0 * n / 10000 if n >= 10000 else 5.0 * n / 1000
    run.report.figure(
        f"4. `manage.py migrate_tenants`, {n} tenants, nothing to apply",
        f"{command:.1f} s ({command * 1000 / n:.2f} ms per tenant, start-up included); "
        f"in-process {nothing:.2f} s; {queries} master queries",
        "< 5 s for 1,000, < 60 s for 10,000; master queries independent of the number of tenants",
        command < limit if n >= 1000 else None,
    )
    if verified is not None:
        run.report.figure(
            f"4. migrate {n} tenants, nothing to apply, `--verify` (every database opened)",
            f"{verified:.1f} s ({verified * 1000 / n:.1f} ms per tenant)",
        )
    if one_new is not None:
        run.report.figure(
            f"4. migrate {n} tenants, one new migration each",
            f"{one_new:.1f} s ({one_new * 1000 / n:.1f} ms per tenant)",
        )
    rows_md = [
        row(f"registering {n} tenants (`tenant_create`, one by one)", registering()),
        row(f"first migration: databases, users and `{', '.join(bookkeeping_applied) or 'nothing'}`", creating()),
    ]
    if nothing_bare is not None:
        rows_md.append(row("nothing to apply, tenants subscribed to nothing", nothing_bare))
    if one_new is not None:
        rows_md.append(row(f"one new migration each: `{', '.join(new_migrations)}`", one_new))
    rows_md += [
        row("nothing to apply, tenants subscribed to `test` v1 (fingerprints equal: no database opened)", nothing),
        row(
            "the same, `manage.py migrate_tenants -v 0` in its own process (Django's start-up and the registration "
            "of every tenant included)",
            command,
        ),
    ]
    if verified is not None:
        rows_md.append(row("nothing to apply, `--verify`: every database opened and its plan built", verified))
    light_note = (
        [
            "",
            "Run with `--light-migrations` (for 10,000 tenants): the tenants were subscribed to `test` v1 before the "
            "first migration, which opened every database once (and kept the fingerprints of that real run); the "
            "runs that open every database again (nothing to apply with no module, one new migration each, "
            "`--verify`) were not made.",
        ]
        if light
        else [
            "",
            '"One new migration": the tenants were created subscribed to nothing, then every one was subscribed to '
            "`test` v1 in the master (one `Subscription` row each), so the next all-tenants migration applied "
            f"exactly `{', '.join(new_migrations)}` (one `CreateModel`, the `test_v1_animal` table) in each tenant "
            "database.",
        ]
    )
    run.report.section(
        "4. Migrating many tenants",
        [
            f"The all-tenants migration is `tenants.services.tenants_migrate_all()` (what `manage.py migrate_tenants` "
            f"runs), with `TENANT_MIGRATION_WORKERS={run.report.settings['TENANT_MIGRATION_WORKERS']}` threads, "
            f"over {n} tenants. Each opened tenant's step makes sure its database and user exist "
            "(`CREATE DATABASE IF NOT EXISTS`, `CREATE USER IF NOT EXISTS`, `ALTER USER`, `GRANT`), then builds the "
            "migration plan of the tenant's apps and applies it.",
            "",
            "| run | seconds | ms per tenant |",
            "| --- | --- | --- |",
            *rows_md,
            "",
            "A successful run keeps each tenant's migration fingerprint (a hash of the migrations its apps have "
            "in the code) in the master; the next run skips a ready tenant whose fingerprint is the code's without "
            "opening its database. `--verify` opens every database, as every run did before the fingerprints. "
            f"A run in which every tenant is skipped makes {queries} master queries for {n} tenants (counted "
            "in-process on the master connection): the tenants, their subscriptions and the module dependencies "
            "in one query each, the kept fingerprints in one, none per tenant, and no password is decrypted.",
            "",
            "Profiled on 2026-11-29 (cProfile of `manage.py migrate_tenants`, 1,000 and 10,000 tenants with equal "
            "fingerprints, load below 1): before, a run with nothing to apply cost about 1.07 ms per tenant at both "
            "sizes, nearly all of it two N+1 loops, one `Subscription` query per tenant when every tenant was "
            "registered before the command line was parsed (`tenant_info_list`) and another in the run "
            "(`tenant_info_list_resolved`), plus a Fernet decryption per tenant at registration (0.03-0.05 ms). "
            "Both lists now read all subscriptions in one query, and the registration derives a tenant's database "
            "password only when a connection to it is first made. A skipped tenant takes no lock, no thread, "
            "writes no run row (its last real run stays its last run on the status page) and invalidates no cache.",
            *light_note,
        ],
    )


# ---------------------------------------------------------------------------------------------
# Figure 5: statements per request


def statements_measure(run: Run) -> None:
    from django.db import connections
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    from m3saas.tenancy.cache import master_cache_invalidate

    tenant = run.tenants[0]
    path = f"/{tenant.id}/test/v1/animals"
    connections.close_all()
    master_cache_invalidate()
    client = Client()

    def count(label: str) -> tuple[int, int, list[str]]:
        with (
            CaptureQueriesContext(connections["default"]) as master,
            CaptureQueriesContext(connections[tenant.alias]) as own,
        ):
            response = client.get(path)
        if response.status_code != 200 or len(response.json()) != ROWS:
            raise BenchError(f"{label} request: HTTP {response.status_code}")
        return len(master.captured_queries), len(own.captured_queries), [q["sql"] for q in own.captured_queries]

    cold_master, cold_tenant, _ = count("cold")
    warm_master, warm_tenant, warm_sql = count("warm")
    plain_master = 0
    with CaptureQueriesContext(connections["default"]) as plain:
        response = client.get(PLAIN_PATH)
    if response.status_code != 200:
        raise BenchError(f"plain request: HTTP {response.status_code}")
    plain_master = len(plain.captured_queries)
    connections.close_all()
    run.report.figure(
        "5. statements per warm tenant request",
        f"{warm_tenant} on the tenant database, {warm_master} on the master",
        "the view's own query, 0 on the master",
        warm_tenant == 1 and warm_master == 0,
    )
    run.report.section(
        "5. Statements per request",
        [
            f"`GET {path}` through Django's test client in the benchmark process, counted with "
            "`CaptureQueriesContext` on the master and on the tenant connection.",
            "",
            "| request | master | tenant database |",
            "| --- | --- | --- |",
            f"| first request for the tenant in this process (cold cache) | {cold_master} | {cold_tenant} |",
            f"| warm request | {warm_master} | {warm_tenant} |",
            f"| plain view, for comparison | {plain_master} | - |",
            "",
            "The warm request's statements: " + "; ".join(f"`` {sql} ``" for sql in warm_sql),
            "",
            "The cold request's master statements read the tenant, its subscriptions and the module dependencies; "
            "they are cached from then on. A request that finds its tenant's connection closed (see figure 2) also "
            "logs in: the configured `init_command`, Django's `SET autocommit` and isolation-level statements, and "
            "the first time a worker thread uses that tenant, Django's server query (`SELECT VERSION(), …`). "
            "`CONN_HEALTH_CHECKS` adds a ping (not a statement) when a kept connection is reused.",
        ],
    )
