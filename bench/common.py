"""What every part of a benchmark run shares: its parameters, the server's size, its error and log."""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from m3saas.identifiers import is_digits

BASE_DIR = Path(__file__).resolve().parent.parent
PLAIN_PATH = "/bench/plain/animals"
ROWS = 10
GUNICORN_WORKERS = 2
GUNICORN_THREADS = 4


class BenchError(RuntimeError):
    """The benchmark cannot go on; the message says which step failed."""


@dataclass(frozen=True)
class Params:
    quick: bool
    tenants: int
    few: int
    duration: float
    warmup: float
    rounds: int
    concurrency: int
    samples: int
    output: Path
    celery_workers: tuple[int, ...] = (2, 4)  # figure 6: worker process counts (empty: skipped)
    broker: str = ""  # figure 6's Celery broker
    only: frozenset[int] = frozenset()  # the figures to measure (empty: all)
    # Figure 4 without the runs that open every tenant database again (one new migration, --verify).
    light_migrations: bool = False
    # Figure 1's load: (client, connections), the client "loadgen" or "wrk".
    clients: tuple[tuple[str, int], ...] = (("loadgen", 16), ("loadgen", 1), ("wrk", 16), ("wrk", 1))
    callgrind: bool = True  # figure 1 counts instructions per request when valgrind is installed (not quick)

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> Params:
        quick = bool(args.quick)
        default_output = BASE_DIR / ("var/performance-quick.md" if quick else "docs/performance.md")
        params = cls(
            quick=quick,
            tenants=args.tenants or (30 if quick else 1000),
            few=args.few or 10,
            duration=args.duration or (2.0 if quick else 10.0),
            warmup=args.warmup if args.warmup is not None else (0.5 if quick else 2.0),
            rounds=args.rounds or (1 if quick else 3),
            concurrency=args.concurrency or 8,
            samples=args.samples or (3 if quick else 20),
            output=Path(args.output) if args.output else default_output,
            celery_workers=_counts(args.celery_workers),
            broker=args.broker,
            only=frozenset(_counts(args.only)),
            light_migrations=bool(getattr(args, "light_migrations", False)),
            clients=_clients(getattr(args, "clients", None) or "loadgen:16,loadgen:1,wrk:16,wrk:1"),
            callgrind=not quick and not getattr(args, "no_callgrind", False),
        )
        if params.few < 1 or params.tenants <= params.few:
            raise BenchError(f"--tenants ({params.tenants}) must be above --few ({params.few}), which is at least 1")
        if params.only - set(range(1, 9)):
            raise BenchError(f"--only takes figure numbers 1-8, not {sorted(params.only)}")
        # Checked before the run, not when its report is written at the end of it.
        if params.output.is_dir():
            raise BenchError(f"--output names a directory: give a file, e.g. {params.output / 'performance.md'}")
        return params

    def measures(self, figure: int) -> bool:
        return not self.only or figure in self.only


def _counts(value: str) -> tuple[int, ...]:
    """`"2,4"` → (2, 4); a one-line error for anything but positive integers."""
    try:
        counts = tuple(int(v) for v in value.split(",") if v.strip())
    except ValueError:
        raise BenchError(f"not a comma-separated list of numbers: {value!r}") from None
    if any(c < 1 for c in counts):
        raise BenchError(f"numbers must be at least 1: {value!r}")
    return counts


def _clients(value: str) -> tuple[tuple[str, int], ...]:
    """`"loadgen:16,wrk:1"` → (("loadgen", 16), ("wrk", 1)); a one-line error for anything else."""
    clients = []
    for item in value.split(","):
        name, _, count = item.strip().partition(":")
        if name not in ("loadgen", "wrk") or not is_digits(count) or int(count) < 1:
            raise BenchError(f"--clients takes loadgen:N or wrk:N items, not {item.strip()!r}")
        clients.append((name, int(count)))
    return tuple(clients)


def log(message: str) -> None:
    print(f"[bench] {message}", flush=True)


@contextmanager
def timed(label: str) -> Iterator[Callable[[], float]]:
    began = time.perf_counter()
    elapsed: list[float] = []
    yield lambda: elapsed[0] if elapsed else time.perf_counter() - began
    elapsed.append(time.perf_counter() - began)
    log(f"{label}: {elapsed[0]:.2f} s")
