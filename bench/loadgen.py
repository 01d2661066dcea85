"""Closed-loop HTTP load generator, run in its own process: `python -m bench.loadgen < spec.json`.

Each of `concurrency` threads keeps one HTTP/1.1 keep-alive connection (`http.client`), reopened
every `reconnect_every` requests so that connections spread over the server's worker processes,
and walks its own shuffled copy of `paths` (or of `requests`, paths with headers of their own) in a
cycle, so every path gets the same share.
The run stops after `duration` seconds or `max_requests` requests, whichever comes first.
Prints one JSON object: requests, errors, elapsed seconds and every latency in milliseconds (with
`requests`, also each request's latencies apart).
Pure standard library, so it never imports Django and never shares a process with the server.
"""

from __future__ import annotations

import http.client
import itertools
import json
import random
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Spec:
    host: str
    port: int
    paths: list[str]
    concurrency: int = 8
    duration: float = 10.0
    max_requests: int = 1_000_000
    reconnect_every: int = 100
    seed: int = 0
    timeout: float = 30.0
    # Sent with every request, e.g. `Authorization: Bearer <key>`.
    headers: dict[str, str] = field(default_factory=dict)
    # Instead of `paths`: [path, headers] pairs, each walked like a path with its own headers
    # (figure 1's interleaved variants).
    requests: list[list[Any]] = field(default_factory=list)


@dataclass
class _ThreadResult:
    latencies_ms: list[float] = field(default_factory=list)
    by_request: dict[int, list[float]] = field(default_factory=dict)  # index in `Spec.requests` → latencies
    errors: int = 0
    first_error: str = ""


def _worker(spec: Spec, index: int, start: threading.Barrier, budget: itertools.count, out: _ThreadResult) -> None:
    # (path, headers, index in `requests` or -1 for a path)
    items: list[tuple[str, dict[str, str], int]] = [(p, {}, -1) for p in spec.paths] + [
        (p, h, i) for i, (p, h) in enumerate(spec.requests)
    ]
    random.Random(spec.seed * 7919 + index).shuffle(items)
    cycle = itertools.cycle(items)
    conn: http.client.HTTPConnection | None = None
    served_on_conn = 0
    start.wait()
    deadline = time.monotonic() + spec.duration
    while time.monotonic() < deadline and next(budget) < spec.max_requests:
        path, own_headers, item = next(cycle)
        if conn is None or served_on_conn >= spec.reconnect_every:
            if conn is not None:
                conn.close()
            conn = http.client.HTTPConnection(spec.host, spec.port, timeout=spec.timeout)
            served_on_conn = 0
        began = time.perf_counter()
        try:
            conn.request("GET", path, headers={"Accept": "application/json", **spec.headers, **own_headers})
            response = conn.getresponse()
            response.read()
            status = response.status
        except (OSError, http.client.HTTPException) as exc:
            conn.close()
            conn = None
            out.errors += 1
            out.first_error = out.first_error or f"{path}: {type(exc).__name__}: {exc}"
            continue
        latency = (time.perf_counter() - began) * 1000.0
        out.latencies_ms.append(latency)
        if item >= 0:
            out.by_request.setdefault(item, []).append(latency)
        served_on_conn += 1
        if status != 200:
            out.errors += 1
            out.first_error = out.first_error or f"{path}: HTTP {status}"
        if response.will_close:
            conn.close()
            conn = None
    if conn is not None:
        conn.close()


def run(spec: Spec) -> dict[str, Any]:
    """Drive the load described by `spec` from this process and return the raw results."""
    if not spec.paths and not spec.requests:
        raise ValueError("no paths to request")
    results = [_ThreadResult() for _ in range(spec.concurrency)]
    start = threading.Barrier(spec.concurrency + 1)
    budget = itertools.count()
    threads = [
        threading.Thread(target=_worker, args=(spec, i, start, budget, results[i]), daemon=True)
        for i in range(spec.concurrency)
    ]
    for thread in threads:
        thread.start()
    start.wait()
    began = time.perf_counter()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - began
    latencies = [latency for r in results for latency in r.latencies_ms]
    return {
        "requests": len(latencies),
        "errors": sum(r.errors for r in results),
        "first_error": next((r.first_error for r in results if r.first_error), ""),
        "elapsed": elapsed,
        "latencies_ms": [round(latency, 3) for latency in latencies],
        # With `requests`: each one's latencies apart, under its index as a string (JSON keys).
        "latencies_by_request": {
            str(i): [round(latency, 3) for r in results for latency in r.by_request.get(i, [])]
            for i in range(len(spec.requests))
        },
    }


def main() -> None:
    spec = Spec(**json.load(sys.stdin))
    json.dump(run(spec), sys.stdout)


if __name__ == "__main__":
    main()
