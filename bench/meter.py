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

With `BENCH_METER_PROFILE=<dir>` in the server's environment, each worker thread also runs
cProfile (thread CPU time) around every request of a variant, one profile per variant, and each
worker writes them to `<dir>/v<variant>-<pid>.prof` when it stops: where a variant's CPU goes
under gunicorn, interleaved with the others. `python -m bench.meter <dir> <a> <b>` prints what
differs per request between variants `a` and `b`. cProfile makes every Python call several times
dearer, so read its figures against each other, not as the meter's.

Only gunicorn's hook names are public here: gunicorn reads every other public module name that
matches one of its settings as that setting.
"""

from __future__ import annotations

import cProfile
import mmap
import os
import pstats
import re
import struct
import sys
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


def _variant(req: Any) -> int:
    for name, value in req.headers:
        if name == _HEADER_UPPER:
            return int(value) if value.isascii() and value.isdigit() and int(value) < VARIANTS - 1 else VARIANTS - 1
    return VARIANTS - 1


def pre_request(worker: Any, req: Any) -> None:
    if not os.environ.get("BENCH_METER_PROFILE"):
        return
    profiles: dict[int, tuple[cProfile.Profile, list[int]]] | None = getattr(_local, "profiles", None)
    if profiles is None:
        profiles = _local.profiles = {}
        with _lock:
            _state.setdefault("profiles", []).append(profiles)
    variant = _variant(req)
    if variant not in profiles:
        profiles[variant] = (cProfile.Profile(time.thread_time), [0])
    profile, served = profiles[variant]
    served[0] += 1
    _local.running = profile
    profile.enable()


def post_request(worker: Any, req: Any, environ: Any, resp: Any) -> None:
    running = getattr(_local, "running", None)
    if running is not None:
        running.disable()
        _local.running = None
    now = time.thread_time_ns()
    last = getattr(_local, "last", None)
    _local.last = now
    shared = _state.get("map")
    if last is None or shared is None:
        return
    variant = _variant(req)
    offset = _state["base"] + variant * _RECORD.size
    with _lock:
        count, nanos = _RECORD.unpack_from(shared, offset)
        _RECORD.pack_into(shared, offset, count + 1, nanos + now - last)


def worker_exit(server: Any, worker: Any) -> None:
    """Write this worker's profiles (`BENCH_METER_PROFILE`), merged over its threads, per variant."""
    directory = os.environ.get("BENCH_METER_PROFILE")
    if not directory:
        return
    merged: dict[int, pstats.Stats] = {}
    served: dict[int, int] = {}
    for profiles in _state.get("profiles", []):
        for variant, (profile, count) in profiles.items():
            profile.create_stats()
            if variant in merged:
                merged[variant].add(profile)
            else:
                merged[variant] = pstats.Stats(profile)
            served[variant] = served.get(variant, 0) + count[0]
    for variant, stats in merged.items():
        stats.dump_stats(str(Path(directory) / f"v{variant}-{os.getpid()}.prof"))
        (Path(directory) / f"v{variant}-{os.getpid()}.requests").write_text(str(served[variant]))


def _per_request(directory: Path, variant: int) -> tuple[int, dict[str, tuple[float, float, float]]]:
    """Requests served and, per function, own and cumulative µs and calls per request."""
    files = sorted(directory.glob(f"v{variant}-*.prof"))
    if not files:
        raise SystemExit(f"no profile of variant {variant} in {directory}")
    stats = pstats.Stats(str(files[0]))
    for extra in files[1:]:
        stats.add(str(extra))
    requests = sum(int(f.with_suffix(".requests").read_text()) for f in files)
    table: dict[str, tuple[float, float, float]] = {}
    for (filename, line, name), (_, calls, own, cumulative, _) in stats.stats.items():  # type: ignore[attr-defined]
        label = f"{re.sub(r'.*(site-packages|lib/python3[.0-9]*)/', '', filename)}:{line}({name})"
        table[label] = (own, cumulative, calls)
    if not requests:
        raise SystemExit(f"variant {variant}: no request in the profiles")
    return requests, {
        k: (own / requests * 1e6, cum / requests * 1e6, n / requests) for k, (own, cum, n) in table.items()
    }


def profile_diff(directory: Path, a: int, b: int, top: int = 30) -> str:
    """What variant `b` spends per request that variant `a` does not, by function (profiled µs)."""
    (served_a, first), (served_b, second) = _per_request(directory, a), _per_request(directory, b)
    none = (0.0, 0.0, 0.0)
    lines = [
        f"variant {a}: {served_a} requests, {sum(v[0] for v in first.values()):.1f} profiled µs each; "
        f"variant {b}: {served_b} requests, {sum(v[0] for v in second.values()):.1f}",
    ]
    for title, index in (("own time", 0), ("cumulative time", 1)):
        lines.append(f"{title}, variant {b} minus variant {a}, profiled µs per request (calls per request):")
        diffs = sorted(
            ((second.get(k, none)[index] - first.get(k, none)[index], k) for k in set(first) | set(second)),
            reverse=True,
        )
        for diff, label in diffs[:top]:
            calls = f"{first.get(label, none)[2]:.2f} -> {second.get(label, none)[2]:.2f}"
            lines.append(f"  {diff:8.1f}  {label}  ({calls})")
    return "\n".join(lines)


if __name__ == "__main__":
    if len(sys.argv) != 4:
        raise SystemExit("usage: python -m bench.meter <profile directory> <variant a> <variant b>")
    print(profile_diff(Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])))
