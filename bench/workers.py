"""Figure 6: `manage.py migrate_tenants` with nothing to apply, in-process against Celery worker processes.

The same command, timed end to end in a process of its own: without CELERY_BROKER_URL (the
in-process path, `TENANT_MIGRATION_WORKERS` threads) and with it, fanning out one task per tenant
to real `celery -A m3saas.celery worker --concurrency=1` processes over the real broker. Every worker
is started once, before the first timing: the first two consume the queues `<run>-w2` and
`<run>-w4`, the others `<run>-w4` only, so a run sent to `<run>-w2` is served by exactly two
processes and one sent to `<run>-w4` by all of them, and the variants alternate within each round.
"""

from __future__ import annotations

import contextlib
import os
import re
import resource
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from bench.common import BASE_DIR, BenchError, log
from bench.server import Run, die_with_parent
from bench.system import child_pids, cpu_seconds, wait_until

TITLE = "6. Migrating many tenants on Celery workers"
DEFAULT_PORTS = {"redis": 6379, "amqp": 5672, "pyamqp": 5672}


@dataclass
class Variant:
    """One way of running the command, and what its timed runs measured."""

    label: str
    workers: int  # worker processes serving it (0: in-process)
    queue: str = ""
    wall: list[float] = field(default_factory=list)  # seconds, end to end, one per round
    command_cpu: list[float] = field(default_factory=list)  # the command's own CPU seconds
    work: list[float] = field(default_factory=list)  # the tenants' own seconds, as the command printed them
    worker_cpu: list[list[float]] = field(default_factory=list)  # each worker's CPU seconds, per round

    @property
    def best(self) -> float:
        return min(self.wall)


def broker_problem(url: str) -> str | None:
    """Why the broker at `url` cannot be used (None: it answers on its port)."""
    if not url:
        return "no broker URL (--broker or BENCH_BROKER_URL)"
    parts = urlsplit(url)
    port = parts.port or DEFAULT_PORTS.get(parts.scheme)
    if parts.scheme not in DEFAULT_PORTS or not parts.hostname or port is None:
        return f"not a Redis or RabbitMQ URL: {url!r}"
    try:
        with socket.create_connection((parts.hostname, port), timeout=2):
            return None
    except OSError as exc:
        return f"the broker does not answer at {parts.hostname}:{port} ({exc})"


def workers_measure(run: Run) -> None:
    """Figure 6, or its row saying why it was skipped."""
    p = run.params
    counts = sorted(set(p.celery_workers))
    if not counts:
        return
    problem = broker_problem(p.broker)
    if problem:
        log(f"figure 6 skipped: {problem}")
        run.report.figure(f"6. migrate {p.tenants} tenants on Celery workers", f"skipped: {problem}")
        run.report.section(TITLE, [f"Skipped: {problem}. Start Redis or RabbitMQ, or pass `--broker URL`."])
        return
    workers = Workers(run, counts)
    try:
        workers.start()
        variants = [Variant("in-process", 0)] + [
            Variant(f"{n} worker processes", n, queue=workers.queue(n)) for n in counts
        ]
        _migrate(run, variants[-1], workers, label="warm-up")  # every worker imports and loads its plans once
        for r in range(p.rounds):
            for variant in variants if r % 2 == 0 else list(reversed(variants)):
                _migrate(run, variant, workers, label=f"round {r + 1}")
    finally:
        workers.stop()
    _report(run, variants, workers)


def _migrate(run: Run, variant: Variant, workers: Workers, *, label: str) -> None:
    """`manage.py migrate_tenants` in its own process; check every tenant was up to date."""
    env = os.environ.copy()
    for name in ("CELERY_BROKER_URL", "CELERY_QUEUE", "CELERY_RESULT_BACKEND"):
        env.pop(name, None)
    if variant.workers:
        env.update(workers.env(variant.queue))
    pids = workers.pids()
    cpu_before = [workers.cpu(pid) for pid in pids]
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    began = time.perf_counter()
    # In-process with `--verify`: every tenant database opened, as the workers do (their fan-out
    # has no fingerprint skip); without it the in-process run would open none and compare nothing.
    verify = [] if variant.workers else ["--verify"]
    done = subprocess.run(
        [sys.executable, "manage.py", "migrate_tenants", *verify],
        cwd=BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=max(300, run.params.tenants / 2),  # a lost task would keep the command waiting
        check=False,
        preexec_fn=die_with_parent,
    )
    seconds = time.perf_counter() - began
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    command_cpu = after.ru_utime + after.ru_stime - children.ru_utime - children.ru_stime
    n = run.params.tenants
    summary = f"{n} of {n} tenants migrated."
    tenant_seconds = [float(s) for s in re.findall(r": OK, up to date \((\d+(?:\.\d+)?)s\)", done.stdout)]
    up_to_date = len(tenant_seconds)
    if done.returncode != 0 or summary not in done.stdout or up_to_date != n:
        raise BenchError(
            f"migrate_tenants ({variant.label}) exited {done.returncode} with {up_to_date} of {n} tenants up to date: "
            f"{done.stdout[-1000:]} {done.stderr[-2000:]} {workers.log_tail()}"
        )
    workers.alive_check()
    log(f"{label}: migrate_tenants, {variant.label}: {seconds:.2f} s, command CPU {command_cpu:.2f} s")
    if label == "warm-up":
        return
    variant.wall.append(seconds)
    variant.command_cpu.append(command_cpu)
    variant.work.append(sum(tenant_seconds))
    variant.worker_cpu.append([workers.cpu(pid) - cpu for pid, cpu in zip(pids, cpu_before, strict=True)])


class Workers:
    """The worker processes of one run: started before the first timing, stopped at the end."""

    def __init__(self, run: Run, counts: list[int]) -> None:
        self.run = run
        self.counts = counts
        self.processes: list[subprocess.Popen[bytes]] = []
        self.names: list[str] = []

    def queue(self, count: int) -> str:
        return f"{self.run.prefix}-w{count}"

    def env(self, queue: str) -> dict[str, str]:
        url = self.run.params.broker
        return {
            "CELERY_BROKER_URL": url,
            "CELERY_QUEUE": queue,
            "CELERY_RESULT_BACKEND": url if url.startswith("redis") else "rpc://",
        }

    def start(self) -> None:
        """max(counts) workers; worker i consumes the queue of every count above i."""
        log_dir = self.run.workdir / "workers"
        log_dir.mkdir(exist_ok=True)
        for i in range(max(self.counts)):
            queues = ",".join(self.queue(n) for n in self.counts if n > i)
            name = f"{self.run.prefix}-{i + 1}@bench"
            out = (log_dir / f"worker{i + 1}.log").open("wb")
            self.processes.append(
                subprocess.Popen(
                    [
                        *(sys.executable, "-m", "celery", "-A", "m3saas.celery", "worker", "--concurrency=1"),
                        *(f"--hostname={name}", "-Q", queues, "--without-gossip", "--without-mingle"),
                        *("--without-heartbeat", "-l", "WARNING"),
                    ],
                    cwd=BASE_DIR,
                    env={**os.environ, **self.env(self.queue(max(self.counts)))},
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,  # the pool process is stopped with its worker
                    preexec_fn=die_with_parent,
                )
            )
            self.names.append(name)
        from celery import Celery

        probe = Celery("bench-probe", broker=self.run.params.broker)
        answered: set[str] = set()

        def ready() -> bool:
            self.alive_check()
            answered.update(name for reply in probe.control.ping(destination=self.names, timeout=0.5) for name in reply)
            return answered >= set(self.names)

        try:
            if not wait_until(ready, timeout=120, interval=0.2):
                raise BenchError(f"{len(self.names) - len(answered)} worker(s) did not answer within 120 s")
        finally:
            probe.close()
        log(f"{len(self.names)} Celery workers ready (pids {', '.join(str(p.pid) for p in self.processes)})")

    def pids(self) -> list[int]:
        return [p.pid for p in self.processes]

    @staticmethod
    def cpu(pid: int) -> float:
        """CPU seconds of a worker: its main process and its pool process, from /proc."""
        total = 0.0
        for each in [pid, *child_pids(pid)]:
            with contextlib.suppress(OSError):  # a process that has just exited
                total += cpu_seconds(each)
        return total

    def alive_check(self) -> None:
        dead = [p for p in self.processes if p.poll() is not None]
        if dead:
            raise BenchError(f"a Celery worker exited with {dead[0].returncode}: {self.log_tail()}")

    def log_tail(self) -> str:
        tails = []
        for path in sorted((self.run.workdir / "workers").glob("*.log")):
            text = path.read_text(errors="replace").strip()
            if text:
                tails.append(f"{path.name}: {text[-1500:]}")
        return " ".join(tails)

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        self._bindings_drop()

    def _bindings_drop(self) -> None:
        """Redis keeps a queue's binding after its workers stop: drop the run's own."""
        if not self.run.params.broker.startswith("redis"):
            return
        try:
            import redis

            client: Any = redis.Redis.from_url(self.run.params.broker)
            client.delete(
                *(f"_kombu.{kind}.{self.queue(n)}" for n in self.counts for kind in ("binding", "binding_permanent"))
            )
            client.close()
        except Exception as exc:
            log(f"dropping the run's queue bindings: {exc}")


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else 0.0


def _report(run: Run, variants: list[Variant], workers: Workers) -> None:
    p = run.params
    n = p.tenants
    base = variants[0]
    rows = []
    for v in variants:
        per_worker = [sum(cpu[i] for cpu in v.worker_cpu) / len(v.worker_cpu) for i in range(len(workers.names))]
        used = per_worker[: v.workers] if v.workers else []
        rows.append(
            f"| {v.label} | {', '.join(f'{s:.1f}' for s in v.wall)} | {v.best:.1f} | {v.best * 1000 / n:.1f} "
            f"| {base.best / v.best:.2f} | {_mean(v.work):.1f} | {_mean(v.command_cpu):.1f} "
            f"| {', '.join(f'{s:.1f}' for s in used) or '-'} "
            f"| {sum(per_worker[v.workers :]):.2f} |"
        )
        if v.workers:
            run.report.figure(
                f"6. migrate {n} tenants, nothing to apply: in-process / {v.workers} Celery worker processes",
                f"{base.best / v.best:.2f} ({base.best:.1f} vs {v.best:.1f} s; best of {len(v.wall)})",
            )
    broker = urlsplit(p.broker)
    run.report.section(
        TITLE,
        [
            f"`manage.py migrate_tenants` over the same {n} tenants (all subscribed to `test` v1, nothing to apply), "
            "timed end to end in a process of its own (Django start-up included): without `CELERY_BROKER_URL` "
            f"(in-process, `TENANT_MIGRATION_WORKERS={run.report.settings.get('TENANT_MIGRATION_WORKERS')}` threads, "
            "with `--verify` so that every tenant database is opened, as the workers' tasks do) "
            f"and with it, one `tenants.migrate` task per tenant over {broker.scheme} at "
            f"{broker.hostname}:{broker.port or DEFAULT_PORTS.get(broker.scheme)} to `celery -A m3saas.celery worker "
            "--concurrency=1` processes (prefork: a main and a pool process each). The workers were started and "
            "warmed up (one untimed fan-out over all of them) before the first timing; the variants alternate "
            f"within each of {p.rounds} round(s), and the ratio is of the best runs.",
            "",
            "| variant | seconds per round | best s | ms per tenant | in-process / this | tenants' own s "
            "| command CPU s | worker CPU s (each serving worker) | CPU s of idle workers |",
            "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
            *rows,
            "",
            "*Tenants' own s* adds up the seconds each tenant's migration took where it ran (the `(0.01s)` of the "
            "command's line per tenant: the task's own `seconds`, or the thread's), so a wall time well above it "
            "divided by the workers is the fan-out's own latency: sending, delivery, the result, the command's "
            "polling. All columns but *best s* and the ratio are means over the rounds. "
            "Worker CPU is user + system time from `/proc` of each worker's main and pool processes during the run; "
            "the command's CPU is its own (`getrusage` of the finished child). The machine has "
            f"{len(os.sched_getaffinity(0))} CPUs shared by the command, the workers, MariaDB and the broker, so "
            "more worker processes than CPUs add no throughput here; what the figure shows is the fan-out's own "
            "cost (a task per tenant, its result, the command waiting on every result) against the in-process "
            "threads, and how the work spreads over the workers.",
        ],
    )
