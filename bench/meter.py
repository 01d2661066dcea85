"""CPU per request of each variant, measured inside the gunicorn workers (issue 16 point 1).

The benchmark's server loads this module as a gunicorn config (`--config python:bench.meter`),
with `BENCH_METER_FILE` naming a file the benchmark made (`meter_file_create`). A client sends
`X-Bench-Variant: <n>` with each request, so the variants of one load can be interleaved request
by request: whatever else the machine does then slows every variant alike, which alternating
rounds of several seconds cannot promise on a shared machine.

Each worker thread reads its own CPU clock (`CLOCK_THREAD_CPUTIME_ID`) when gunicorn has answered
a request (`post_request`), and adds what it used since it last did so to that request's variant:
parsing the request, the application, writing the response. A thread's first request has no
start and is left out. The workers' main thread (accepting, polling keep-alive connections) is
not counted; it does the same for every variant. The counts live in the file, one slot per worker
(`worker.age`), read by the benchmark with `meter_read` between loads.

Only gunicorn's hook names are public here: gunicorn reads every other public module name that
matches one of its settings as that setting.
"""

from __future__ import annotations

import mmap
import os
import struct
import threading
import time
from pathlib import Path
from typing import Any

VARIANTS = 8  # variant numbers 0-6; 7 counts requests without (or with a wrong) number
_SLOTS = 64
_RECORD = struct.Struct("qq")  # requests, CPU nanoseconds
_SIZE = _SLOTS * VARIANTS * _RECORD.size
HEADER = "X-Bench-Variant"
_HEADER_UPPER = HEADER.upper()

_state: dict[str, Any] = {}
_lock = threading.Lock()
_local = threading.local()


def meter_file_create(path: Path) -> None:
    """An empty meter file, before the server starts."""
    path.write_bytes(bytes(_SIZE))


def meter_read(path: Path) -> list[tuple[int, int]]:
    """(requests, CPU nanoseconds) per variant number, summed over the workers."""
    data = path.read_bytes()
    totals = [(0, 0)] * VARIANTS
    for slot in range(_SLOTS):
        for variant in range(VARIANTS):
            count, nanos = _RECORD.unpack_from(data, (slot * VARIANTS + variant) * _RECORD.size)
            totals[variant] = (totals[variant][0] + count, totals[variant][1] + nanos)
    return totals


def post_fork(server: Any, worker: Any) -> None:
    """In each new worker: map the file and take this worker's slot."""
    name = os.environ.get("BENCH_METER_FILE")
    if not name:
        return
    with open(name, "r+b") as f:
        _state["map"] = mmap.mmap(f.fileno(), _SIZE)
    _state["base"] = (worker.age % _SLOTS) * VARIANTS * _RECORD.size


def post_request(worker: Any, req: Any, environ: Any, resp: Any) -> None:
    now = time.thread_time_ns()
    last = getattr(_local, "last", None)
    _local.last = now
    shared = _state.get("map")
    if last is None or shared is None:
        return
    variant = VARIANTS - 1
    for name, value in req.headers:
        if name == _HEADER_UPPER:
            variant = int(value) if value.isdigit() and int(value) < VARIANTS - 1 else VARIANTS - 1
            break
    offset = _state["base"] + variant * _RECORD.size
    with _lock:
        count, nanos = _RECORD.unpack_from(shared, offset)
        _RECORD.pack_into(shared, offset, count + 1, nanos + now - last)
