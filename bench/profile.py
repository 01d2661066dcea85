"""Where a request's CPU goes: `python -m bench.profile [--requests N] [--cprofile] [--callgrind]`.

Sets up as the benchmark does (its own master, a few tenants, the same rows; dropped at the end),
then serves requests in this process through Django's WSGI handler with the environ gunicorn
builds, one variant after the other: the plain view, the tenant route, the tenant route with the
tenant's API key. Prints the thread CPU time per request of each variant (median of blocks) and,
with `--cprofile`, the functions whose own time differs most between the tenant route and the
plain view (µs per request). `--callgrind` counts instructions per request of each variant
instead, which do not depend on the machine's load:
`valgrind --tool=callgrind --instr-atstart=no python -m bench.profile --callgrind --requests 300`.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import pstats
import secrets
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.common import BASE_DIR, PLAIN_PATH, Params
from bench.report import Report
from bench.server import Run, cleanup, configure, master_prepare, rows_seed
from bench.system import MariaDBAdmin, cpu_seconds


def _environ(path: str, headers: dict[str, str]) -> dict[str, Any]:
    environ: dict[str, Any] = {
        "REQUEST_METHOD": "GET",
        "SCRIPT_NAME": "",
        "PATH_INFO": path,
        "QUERY_STRING": "",
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8000",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
        "REMOTE_PORT": "50000",
        "HTTP_HOST": "127.0.0.1:8000",
        "HTTP_ACCEPT": "application/json",
        "HTTP_USER_AGENT": "bench",
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(b""),
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": True,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
    }
    for name, value in headers.items():
        environ["HTTP_" + name.upper().replace("-", "_")] = value
    return environ


def serve(app: Any, path: str, headers: dict[str, str], count: int) -> None:
    """`count` requests of `path`, as gunicorn calls the application (body read, response closed)."""
    statuses: list[str] = []

    def start_response(status: str, response_headers: list[tuple[str, str]], exc_info: Any = None) -> None:
        statuses.append(status)

    for _ in range(count):
        result = app(_environ(path, headers), start_response)
        for _chunk in result:
            pass
        if hasattr(result, "close"):
            result.close()
    if any(not s.startswith("200") for s in statuses):
        raise SystemExit(f"{path}: {sorted(set(statuses))}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.profile", description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000, help="requests per variant and block")
    parser.add_argument("--blocks", type=int, default=5, help="alternating blocks of each variant")
    parser.add_argument("--cprofile", action="store_true", help="per-function own time, tenant vs plain")
    parser.add_argument("--callgrind", action="store_true", help="one variant's loop under callgrind only")
    parser.add_argument("--top", type=int, default=30)
    parser.add_argument("--tenants", type=int, default=3, help="tenants created (`--spread` wants hundreds)")
    parser.add_argument("--spread", action="store_true", help="requests over 10 tenants against over all of them")
    parser.add_argument("--steps", action="store_true", help="each step of the tenant middleware alone, µs")
    parser.add_argument("--logins", action="store_true", help="a tenant login over TCP and over the Unix socket")
    parser.add_argument("--tail", action="store_true", help="per-request wall time tagged with its cause")
    parser.add_argument(
        "--opcodes", action="store_true", help="Python bytecodes per request by function, each variant minus plain"
    )
    parser.add_argument(
        "--ablate", action="store_true", help="the tenant route with each step made a no-op in turn (measurement only)"
    )
    args = parser.parse_args(argv)

    admin = MariaDBAdmin(host="127.0.0.1", port=3306, user="root", password="")
    params = Params.from_args(
        argparse.Namespace(
            quick=True, tenants=args.tenants, few=1, duration=None, warmup=None, rounds=None, concurrency=None,
            samples=None, output=None, celery_workers="", broker="", only="",
        )
    )  # fmt: skip
    prefix = f"m3bench{secrets.token_hex(3)}"
    report = Report(params=params, command="bench.profile", started=datetime.now(UTC))
    run = Run(
        params=params, prefix=prefix, admin=admin, workdir=Path(tempfile.mkdtemp(prefix=f"{prefix}-")), report=report
    )
    configure(run, {"host": "127.0.0.1", "port": 3306, "user": "root", "password": ""})
    try:
        master_prepare(run)
        from bench.measures import _api_key, tenants_create

        tenants_create(run)
        rows_seed(run)
        from m3saas.handlers import WSGIHandler

        app = WSGIHandler()  # as gunicorn serves `m3saas.wsgi`
        tenant = run.tenants[0]
        key = _api_key(tenant)
        variants = {
            "plain": (PLAIN_PATH, {}),
            "tenant": (f"/{tenant.id}/test/v1/animals", {}),
            "keyed": (f"/{tenant.id}/test/v1/animals", {"Authorization": f"Bearer {key}"}),
        }
        for path, headers in variants.values():
            serve(app, path, headers, 200)  # warm: caches, connections, owner mark
        meter = Meter(callgrind=args.callgrind)
        cpu: dict[str, list[float]] = {name: [] for name in variants}
        for block in range(args.blocks):
            for name, (path, headers) in variants.items() if block % 2 == 0 else reversed(variants.items()):
                cpu[name].append(meter.measure(app, path, headers, args.requests))
        for name, values in cpu.items():
            median = statistics.median(values)
            print(f"{name:7s} {meter.unit}/request: median {median:9.1f}  blocks {[round(v) for v in values]}")
        plain = statistics.median(cpu["plain"])
        for name in ("tenant", "keyed"):
            print(f"plain / {name}: {plain / statistics.median(cpu[name]):.3f}")
        print("PROFILEJSON " + json.dumps({"unit": meter.unit, "requests": args.requests, "blocks": cpu}), flush=True)
        if args.cprofile:
            _cprofile(app, variants, args.requests, args.top)
        if args.steps:
            _steps(tenant, key)
        if args.spread:
            _spread(app, run.tenants, args.requests, args.blocks)
        if args.logins:
            _logins(tenant, args.requests, args.blocks, admin)
        if args.opcodes:
            _opcodes(app, variants, args.top)
        if args.tail:
            _tail(app, variants, args.requests, args.blocks)
        if args.ablate:
            _ablate(app, variants, tenant, args.requests, args.blocks, meter)
    finally:
        cleanup(run)
    return 0


_CALLGRIND_C = """
#include <valgrind/callgrind.h>
void cg_start(void) { CALLGRIND_ZERO_STATS; CALLGRIND_START_INSTRUMENTATION; }
void cg_stop(const char *name) { CALLGRIND_STOP_INSTRUMENTATION; CALLGRIND_DUMP_STATS_AT(name); }
"""


class Meter:
    """Thread CPU µs per request, or, with `callgrind`, instructions per request: the process must
    then run under `valgrind --tool=callgrind --instr-atstart=no`, and only the measured loops are
    instrumented (callgrind's client requests, from a helper compiled here with the system's C
    compiler and valgrind headers), each dumped to a `callgrind.out.<pid>.<n>` of its own."""

    def __init__(self, *, callgrind: bool) -> None:
        self.lib: Any = None
        self.unit = "instructions" if callgrind else "CPU µs"
        if callgrind:
            import ctypes
            import subprocess

            build = Path(tempfile.mkdtemp(prefix="bench-callgrind-"))
            (build / "cg.c").write_text(_CALLGRIND_C)
            command = ["cc", "-shared", "-fPIC", "-O1", "-o", str(build / "cg.so"), str(build / "cg.c")]
            subprocess.run(command, check=True)
            self.lib = ctypes.CDLL(str(build / "cg.so"))

    def measure(self, app: Any, path: str, headers: dict[str, str], count: int) -> float:
        if self.lib is None:
            began = time.thread_time()
            serve(app, path, headers, count)
            return (time.thread_time() - began) / count * 1e6
        import glob
        import os

        pid = os.getpid()
        before = set(glob.glob(f"callgrind.out.{pid}*"))
        self.lib.cg_start()
        serve(app, path, headers, count)
        self.lib.cg_stop(path.encode())
        (dump,) = set(glob.glob(f"callgrind.out.{pid}*")) - before
        with open(dump) as f:
            total = next(int(line.split()[1]) for line in f if line.startswith("totals:"))
        if os.environ.get("BENCH_KEEP_DUMPS"):  # for callgrind_annotate
            os.rename(dump, f"{dump}.{path.strip('/').replace('/', '-')}.kept")
        else:
            os.unlink(dump)
        return total / count


def _cprofile(app: Any, variants: dict[str, tuple[str, dict[str, str]]], count: int, top: int) -> None:
    own: dict[str, dict[str, float]] = {}
    calls: dict[str, dict[str, float]] = {}
    for name, (path, headers) in variants.items():
        profiler = cProfile.Profile(time.thread_time)
        profiler.enable()
        serve(app, path, headers, count)
        profiler.disable()
        stats = pstats.Stats(profiler)
        own[name], calls[name] = {}, {}
        for (filename, line, func), (_cc, nc, tt, ct, _callers) in stats.stats.items():  # type: ignore[attr-defined]
            label = f"{_short(filename)}:{line}({func})"
            calls[name][label] = nc / count
            own[name][label] = tt / count * 1e6
            own[name]["cum " + label] = ct / count * 1e6
        total = sum(v for k, v in own[name].items() if not k.startswith("cum "))
        print(f"\n{name}: total {total:.1f} µs/request (profiled)")
    for name in ("tenant", "keyed"):
        print(f"\nown time, {name} minus plain, µs per request (profiled; top {top}):")
        labels = set(own[name]) | set(own["plain"])
        diffs = sorted(
            ((own[name].get(k, 0.0) - own["plain"].get(k, 0.0), k) for k in labels if not k.startswith("cum ")),
            reverse=True,
        )
        for diff, label in diffs[:top]:
            print(f"  {diff:8.1f}  {label}")
        print(f"cumulative time, {name} minus plain, µs per request (profiled; top {top}):")
        cum = sorted(
            ((own[name].get(k, 0.0) - own["plain"].get(k, 0.0), k[4:]) for k in labels if k.startswith("cum ")),
            reverse=True,
        )
        for diff, label in cum[:top]:
            print(f"  {diff:8.1f}  {label}")
        # What runs in one route and not (or less) in the other: the distinct code of a request.
        print(f"calls per request, {name} minus plain (top {top} by count; functions either side):")
        names = set(calls[name]) | set(calls["plain"])
        counted = sorted(
            ((calls[name].get(k, 0.0) - calls["plain"].get(k, 0.0), k) for k in names), key=lambda c: -abs(c[0])
        )
        only_here = sum(1 for k in calls[name] if k not in calls["plain"])
        only_plain = sum(1 for k in calls["plain"] if k not in calls[name])
        print(f"  functions called only by {name}: {only_here}, only by plain: {only_plain}")
        for diff, label in counted[:top]:
            if diff:
                print(f"  {diff:+8.2f}  {label}")
        print(f"cumulative time of the tenancy functions, {name}:")
        for label, value in sorted(own[name].items(), key=lambda kv: -kv[1]):
            tenancy = ("tenants/", "m3saas/tenancy", "m3saas/access", "m3saas/traffic", "idempotency")
            if label.startswith("cum ") and value >= 1.0 and any(s in label for s in tenancy):
                print(f"  {value:8.1f}  {label[4:]}")


def _steps(tenant: Any, key: str) -> None:
    """Each step the tenant route adds, called alone in a loop (thread CPU µs per call, median of 5)."""
    from django.db import connections
    from django.test import RequestFactory

    from m3saas.access import rate_limit_hit
    from m3saas.tenancy.cache import master_cache_generation, master_cached
    from m3saas.tenancy.connections import (
        tenant_connection_make_room,
        tenant_connection_register,
        tenant_connections_trim,
    )
    from m3saas.tenancy.context import use_tenant
    from m3saas.tenancy.ownership import tenant_owner_verify
    from m3saas.tenancy.paths import resolve_module_version
    from m3saas.traffic import traffic_count
    from modules.test.v1.models import Animal
    from tenants.api_keys import api_key_authenticate, tenant_rate_limit_get
    from tenants.middleware import TenantMiddleware
    from tenants.selectors import tenant_info_get
    from tenants.services import tenant_ready_ensure

    middleware = TenantMiddleware(lambda request: None)  # type: ignore[arg-type,return-value]
    request = RequestFactory().get(f"/{tenant.id}/test/v1/animals")
    limit = tenant_rate_limit_get(tenant_id=tenant.id)
    generation = master_cache_generation()

    def entered() -> None:
        with use_tenant(tenant):
            pass

    def ping() -> None:
        conn = connections[tenant.alias]
        conn.health_check_done = False  # type: ignore[attr-defined]
        conn.close_if_health_check_failed()

    def routed_query_setup() -> None:
        with use_tenant(tenant):
            Animal.objects.all().query.get_compiler(using=Animal.objects.db)

    steps: dict[str, Callable[[], object]] = {
        "path regex (middleware)": lambda: middleware.path_regex.match(request.path_info),
        "_api_key, no key sent": lambda: middleware._api_key(
            request, tenant_id=tenant.id, module="test", generation=generation
        ),
        "api_key_authenticate (cached key, SHA-256)": lambda: api_key_authenticate(
            key=key, tenant_id=tenant.id, generation=generation
        ),
        "master_cached, one hit (generation check + front)": lambda: master_cached(f"tenant:id:{tenant.id}", dict),
        "tenant_info_get (cached)": lambda: tenant_info_get(tenant_id=tenant.id),
        "resolve_module_version": lambda: resolve_module_version(tenant, "test", "v1"),
        "tenant_rate_limit_get (no key)": lambda: tenant_rate_limit_get(tenant_id=tenant.id),
        "rate_limit_hit (cache incr)": lambda: rate_limit_hit(f"tenant:{tenant.id}", limit),
        "tenant_ready_ensure": lambda: tenant_ready_ensure(tenant=tenant),
        "tenant_connection_register (already current)": lambda: tenant_connection_register(tenant),
        "tenant_connection_make_room": lambda: tenant_connection_make_room(tenant.alias),
        "use_tenant enter + exit (registers again)": entered,
        "tenant_owner_verify (verified)": lambda: tenant_owner_verify(tenant),
        "tenant_connections_trim": lambda: tenant_connections_trim(keep=tenant.alias),
        "traffic_count": lambda: traffic_count(tenant_id=tenant.id, status_code=200),
        "health-check ping of the tenant connection": ping,
        "routed queryset compile (router, in use_tenant)": routed_query_setup,
    }
    print("\nsteps of the tenant route, thread CPU µs per call (median of 5 x 2000 calls):")
    for label, step in steps.items():
        for _ in range(200):
            step()
        values = []
        for _ in range(5):
            began = time.thread_time()
            for _ in range(2000):
                step()
            values.append((time.thread_time() - began) / 2000 * 1e6)
        print(f"  {statistics.median(values):7.2f}  {label}")


def _spread(app: Any, tenants: list[Any], count: int, blocks: int) -> None:
    """Thread CPU per request spread over 10 tenants and over all, in one thread (figure 2 in-process),
    with the logins each needs (`connection_created`)."""
    from django.db.backends.signals import connection_created

    logins: list[int] = [0]

    def on_connect(sender: Any, connection: Any, **kwargs: Any) -> None:
        logins[0] += 1

    paths = [f"/{t.id}/test/v1/animals" for t in tenants]
    # One tenant: no login. Ten in a cycle: a login per request (four kept per thread, least
    # recently used closed first), as over all of them, which adds only their number.
    mixes = {"1 tenant": paths[:1], "10 tenants": paths[:10], f"{len(paths)} tenants": paths}
    for mix in mixes.values():
        for path in mix * 2:
            serve(app, path, {}, 1)  # every tenant resolved and verified once
    connection_created.connect(on_connect)
    try:
        cpu: dict[str, list[float]] = {name: [] for name in mixes}
        done: dict[str, list[int]] = {name: [0, 0] for name in mixes}
        for block in range(blocks):
            for name, mix in mixes.items() if block % 2 == 0 else reversed(mixes.items()):
                logins[0] = 0
                began = time.thread_time()
                for i in range(count):
                    serve(app, mix[i % len(mix)], {}, 1)
                cpu[name].append((time.thread_time() - began) / count * 1e6)
                done[name][0] += count
                done[name][1] += logins[0]
    finally:
        connection_created.disconnect(on_connect)
    print("\nspread over tenants, one thread, thread CPU µs per request (median of blocks):")
    for name, values in cpu.items():
        print(f"  {name:14s} {statistics.median(values):8.1f}  logins per request {done[name][1] / done[name][0]:.2f}")


def _logins(tenant: Any, count: int, blocks: int, admin: MariaDBAdmin) -> None:
    """What a tenant login costs through Django (connect, `init_command`, session set-up, close),
    over TCP to 127.0.0.1 and over the Unix socket (`localhost`), with our backend and with
    Django's own, alternating: wall, client thread CPU, MariaDB's CPU and statements per login."""
    from django.db import connections
    from django.db.utils import load_backend

    entry = connections.settings[tenant.alias]
    backends = {"ours": load_backend(entry["ENGINE"]), "django": load_backend("django.db.backends.mysql")}
    variants = [(name, host) for host in ("127.0.0.1", "localhost") for name in backends]
    results: dict[tuple[str, str], tuple[list[float], list[float], list[float], list[float]]] = {
        variant: ([], [], [], []) for variant in variants
    }
    server = admin.local_pid()
    # What reading the count costs in statements (its own connection's), taken off every block.
    reading = -(_statements(admin) - _statements(admin))
    n = max(count // 10, 20)
    for block in range(blocks):
        for name, host in variants if block % 2 == 0 else list(reversed(variants)):
            settings_dict = {**entry, "HOST": host}
            wrapper = backends[name].DatabaseWrapper(settings_dict, alias=f"{tenant.alias}_login")
            wrapper.ensure_connection()  # the first login per server learns its flavour
            wrapper.close()
            questions = _statements(admin)
            server_began = cpu_seconds(server) if server else 0.0
            wall_began, cpu_began = time.perf_counter(), time.thread_time()
            for _ in range(n):
                wrapper.ensure_connection()
                wrapper.close()
            wall, cpu = time.perf_counter() - wall_began, time.thread_time() - cpu_began
            server_cpu = (cpu_seconds(server) if server else 0.0) - server_began
            wall_ms, cpu_ms, server_ms = wall / n * 1000, cpu / n * 1000, server_cpu / n * 1000
            # The server counts each login's COM_QUIT as one more: what is left is what the login sent.
            statements = (_statements(admin) - questions - reading) / n - 1
            for values, value in zip(results[(name, host)], (wall_ms, cpu_ms, server_ms, statements), strict=True):
                values.append(value)
    print(f"\ntenant login through Django ({n} per block, median of {blocks} blocks):")
    for (name, host), columns in results.items():
        via = "TCP" if host.startswith("127") else "Unix socket"
        wall_ms, cpu_ms, server_ms, sent = (statistics.median(column) for column in columns)
        print(
            f"  {via:11s} {name:6s}: wall {wall_ms:.3f} ms, client CPU {cpu_ms:.3f} ms,"
            f" MariaDB CPU {server_ms:.3f} ms, statements after the handshake {sent:.2f}"
        )


def _statements(admin: MariaDBAdmin) -> int:
    """Statements the server has run since it started, every client's (`Questions`)."""
    return int(admin.execute("SHOW GLOBAL STATUS LIKE 'Questions'")[0][1])


def _tail(app: Any, variants: dict[str, tuple[str, dict[str, str]]], count: int, blocks: int) -> None:
    """Per-request wall time of each variant, each request tagged with what happened in it: a
    garbage collection (its generation), a new database connection. Which tags the slowest 1 %
    carry says what makes the tail (in one thread, without the other requests' contention)."""
    import gc

    from django.db.backends.signals import connection_created

    tags: list[str] = []

    def on_gc(phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            tags.append(f"gc{info['generation']}")

    def on_connect(sender: Any, connection: Any, **kwargs: Any) -> None:
        tags.append("connect")

    gc.callbacks.append(on_gc)
    connection_created.connect(on_connect)
    try:
        print("\ntail: wall ms per request, one thread (median of p50/p99 over blocks); tags of the slowest 1 %:")
        for name, (path, headers) in variants.items():
            timed: list[tuple[float, tuple[str, ...]]] = []
            for _ in range(blocks):
                for _ in range(count):
                    tags.clear()
                    began = time.perf_counter()
                    serve(app, path, headers, 1)
                    timed.append(((time.perf_counter() - began) * 1000, tuple(tags)))
            ordered = sorted(timed)
            p50, p99 = ordered[len(ordered) // 2][0], ordered[int(len(ordered) * 0.99)][0]
            slow = ordered[int(len(ordered) * 0.99) :]
            tagged = Counter(tag for _, t in slow for tag in set(t))
            everywhere = Counter(tag for _, t in timed for tag in set(t))
            print(
                f"  {name:7s} p50 {p50:.3f} p99 {p99:.3f} ms; slowest {len(slow)}: "
                + (", ".join(f"{k} {v}/{everywhere[k]}" for k, v in tagged.most_common()) or "no tag")
                + f"; untagged p99 {_untagged_p99(timed):.3f} ms"
            )
    finally:
        gc.callbacks.remove(on_gc)
        connection_created.disconnect(on_connect)


def _untagged_p99(timed: list[tuple[float, tuple[str, ...]]]) -> float:
    plain = sorted(ms for ms, t in timed if not t)
    return plain[int(len(plain) * 0.99)] if plain else float("nan")


def _ablate(
    app: Any, variants: dict[str, tuple[str, dict[str, str]]], tenant: Any, count: int, blocks: int, meter: Meter
) -> None:
    """What each step costs inside a real request: the tenant route with that step replaced by a
    no-op (its result kept), against the route as it is, alternating; measurement only."""
    from contextlib import ExitStack
    from unittest import mock

    from django.db.utils import ConnectionHandler

    from m3saas.tenancy import cache as tenancy_cache
    from m3saas.tenancy.routers import TenantRouter
    from tenants.api_keys import api_key_authenticate, tenant_rate_limit_get
    from tenants.selectors import tenant_info_get

    limit = tenant_rate_limit_get(tenant_id=tenant.id)
    info = tenant_info_get(tenant_id=tenant.id)
    generation = tenancy_cache._generation()
    key_info = api_key_authenticate(
        key=variants["keyed"][1]["Authorization"].split()[1], tenant_id=tenant.id, generation=generation
    )
    version = __import__("m3saas.tenancy.paths", fromlist=["x"]).resolve_module_version(tenant, "test", "v1")
    noop = lambda *a, **k: None  # noqa: E731
    patches: dict[str, list[tuple[Any, str, Any]]] = {
        "master generation read (locmem get) per master_cached": [(tenancy_cache, "_generation", lambda: generation)],
        "tenant_info_get": [("tenants.middleware", "tenant_info_get", lambda **k: info)],
        "tenant_rate_limit_get": [("tenants.middleware", "tenant_rate_limit_get", lambda **k: limit)],
        "rate_limit_hit": [("tenants.middleware", "rate_limit_hit", noop)],
        "resolve_module_version": [("tenants.middleware", "resolve_module_version", lambda *a: version)],
        "tenant_ready_ensure": [("tenants.middleware", "tenant_ready_ensure", lambda **k: info)],
        "register in the middleware": [("tenants.middleware", "tenant_connection_register", noop)],
        "register again in use_tenant": [("m3saas.tenancy.context", "tenant_connection_register", noop)],
        "make_room + trim": [
            ("tenants.middleware", "tenant_connection_make_room", noop),
            ("tenants.middleware", "tenant_connections_trim", noop),
        ],
        "tenant_owner_verify": [("tenants.middleware", "tenant_owner_verify", noop)],
        "traffic_count": [("tenants.middleware", "traffic_count", noop)],
        "TenantConnectionHandler.__getitem__ (Django's own)": [
            ("m3saas.tenancy.connections.TenantConnectionHandler", "__getitem__", ConnectionHandler.__getitem__)
        ],
        "router: module model to the tenant's alias": [(TenantRouter, "_db_for", lambda self, model, **h: info.alias)],
        "keyed: api_key_authenticate (cached key, SHA-256, use record)": [
            ("tenants.middleware", "api_key_authenticate", lambda **k: key_info)
        ],
        "keyed: rate_limit_hit (tenant and key counters)": [("tenants.middleware", "rate_limit_hit", noop)],
        "keyed: master generation read per master_cached": [(tenancy_cache, "_generation", lambda: generation)],
    }
    # Every step of the middleware at once: what is left is the routing, the context and the router.
    middleware_steps = [
        "tenant_info_get", "tenant_rate_limit_get", "rate_limit_hit", "resolve_module_version", "tenant_ready_ensure",
        "register in the middleware", "make_room + trim", "tenant_owner_verify", "traffic_count",
    ]  # fmt: skip
    patches["every middleware step above"] = [target for step in middleware_steps for target in patches[step]]
    print(f"\nablation: tenant route {meter.unit}/request, as is and with one step a no-op (median of blocks):")
    for label, targets in patches.items():
        path, headers = variants["keyed" if label.startswith("keyed:") else "tenant"]
        base: list[float] = []
        ablated: list[float] = []
        for block in range(blocks):
            for patched in (False, True) if block % 2 == 0 else (True, False):
                with ExitStack() as stack:
                    if patched:
                        for target, attribute, value in targets:
                            if isinstance(target, str):
                                stack.enter_context(mock.patch(f"{target}.{attribute}", value))
                            else:
                                stack.enter_context(mock.patch.object(target, attribute, value))
                    serve(app, path, headers, 20)
                    (ablated if patched else base).append(meter.measure(app, path, headers, count))
        b, a = statistics.median(base), statistics.median(ablated)
        print(f"  {b - a:9.1f}  {label}  ({b:.0f} -> {a:.0f})", flush=True)


def _opcodes(app: Any, variants: dict[str, tuple[str, dict[str, str]]], top: int) -> None:
    """Python bytecodes each variant executes per request, by function and by file, minus the
    plain view's (`sys.settrace` with opcode events, 20 warm requests each): exact and the same on
    any machine or load, where the CPU figures move by more than the difference. C functions
    (regular expressions, dict operations, the database driver) count as the one call that
    reaches them, so this ranks Python code, which is most of what tenancy adds."""
    count = 20

    def counted(path: str, headers: dict[str, str]) -> Counter[tuple[str, int, str]]:
        found: Counter[tuple[str, int, str]] = Counter()

        def local(frame: Any, event: str, arg: Any) -> Any:
            if event == "opcode":
                code = frame.f_code
                found[(code.co_filename, code.co_firstlineno, code.co_name)] += 1
            return local

        def call(frame: Any, event: str, arg: Any) -> Any:
            frame.f_trace_lines = False
            frame.f_trace_opcodes = True
            return local

        serve(app, path, headers, 5)
        sys.settrace(call)
        try:
            serve(app, path, headers, count)
        finally:
            sys.settrace(None)
        return found

    per_variant = {name: counted(path, headers) for name, (path, headers) in variants.items()}
    plain = per_variant["plain"]
    print(f"\nPython bytecodes per request ({count} requests traced per variant):")
    for name, found in per_variant.items():
        print(f"  {name:7s} {sum(found.values()) / count:9.0f}")
    for name in ("tenant", "keyed"):
        found = per_variant[name]
        diff = {key: (found.get(key, 0) - plain.get(key, 0)) / count for key in set(found) | set(plain)}
        by_file: Counter[str] = Counter()
        for (filename, _, _), value in diff.items():
            by_file[_short(filename)] += value  # type: ignore[assignment]
        print(f"\n{name} minus plain, bytecodes per request, by file:")
        for filename, value in sorted(by_file.items(), key=lambda item: -abs(item[1]))[:top]:
            if abs(value) >= 1:
                print(f"  {value:8.0f}  {filename}")
        print(f"{name} minus plain, bytecodes per request, by function:")
        for (filename, line, function), value in sorted(diff.items(), key=lambda item: -abs(item[1]))[:top]:
            if abs(value) >= 1:
                print(f"  {value:8.0f}  {_short(filename)}:{line}({function})")


def _short(filename: str) -> str:
    for marker in ("site-packages/", "lib/python3.11/", f"{BASE_DIR}/"):
        if marker in filename:
            return filename.split(marker, 1)[1]
    return filename


if __name__ == "__main__":
    sys.exit(main())
