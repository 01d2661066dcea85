"""What every part of a benchmark run shares: its parameters, the server's size, its error and log."""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

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
        )
        if params.few < 1 or params.tenants <= params.few:
            raise BenchError(f"--tenants ({params.tenants}) must be above --few ({params.few}), which is at least 1")
        return params


def log(message: str) -> None:
    print(f"[bench] {message}", flush=True)


@contextmanager
def timed(label: str) -> Iterator[Callable[[], float]]:
    began = time.perf_counter()
    elapsed: list[float] = []
    yield lambda: elapsed[0] if elapsed else time.perf_counter() - began
    elapsed.append(time.perf_counter() - began)
    log(f"{label}: {elapsed[0]:.2f} s")
