"""The cost of tenancy, measured on the local MariaDB: `python -m bench.run [--quick]` (`make bench`).

Sets everything up itself under names of its own (`m3bench<run id>_…`: a master database, tenant
databases and users), prints each figure, writes a Markdown report (docs/performance.md, or
var/performance-quick.md in quick mode) and drops everything it created, also on failure.

This file is the command line and the order of one run; `server.py` sets up and tears down,
`measures.py` measures each figure, `report.py` writes the report.
"""

from __future__ import annotations

import argparse
import os
import secrets
import signal
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from bench.common import BenchError, Params, log
from bench.measures import (
    overhead_measure,
    provisioning_measure,
    scale_measure,
    statements_measure,
    tenants_create,
)
from bench.move import move_measure
from bench.placement import placement_measure, second_server_close, second_server_ensure
from bench.report import Report
from bench.server import (
    Run,
    cleanup,
    configure,
    leftovers_sweep,
    master_prepare,
    rows_seed,
    server_start,
    server_stop,
)
from bench.system import MariaDBAdmin, load_average, machine_describe
from bench.workers import workers_measure


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.run", description=__doc__.splitlines()[0] if __doc__ else None
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        default=os.environ.get("BENCH_QUICK", "") not in ("", "0"),
        help="CI size: 30 tenants, 1 round of 2 s (also BENCH_QUICK=1)",
    )
    parser.add_argument("--tenants", type=int, help="tenants created (default 1000, quick 30)")
    parser.add_argument("--few", type=int, help="tenants of the small spread (default 10)")
    parser.add_argument("--duration", type=float, help="seconds of load per variant and round (default 10, quick 2)")
    parser.add_argument(
        "--warmup", type=float, help="seconds of warm-up before each measurement (default 2, quick 0.5)"
    )
    parser.add_argument("--rounds", type=int, help="rounds of each load comparison (default 3, quick 1)")
    parser.add_argument("--concurrency", type=int, help="client connections (default 8)")
    parser.add_argument("--samples", type=int, help="tenants provisioned one by one for figure 3 (default 20, quick 3)")
    parser.add_argument(
        "--output", help="Markdown report (default docs/performance.md, quick: var/performance-quick.md)"
    )
    parser.add_argument(
        "--celery-workers",
        default=os.environ.get("BENCH_CELERY_WORKERS", "2,4"),
        help="figure 6: Celery worker process counts compared with in-process (default 2,4; empty: skip it)",
    )
    parser.add_argument(
        "--broker",
        # Database 1, as docker-compose's broker: the tests' Redis cache is database 0, which they empty.
        default=os.environ.get("BENCH_BROKER_URL", "redis://127.0.0.1:6379/1"),
        help="figure 6's Celery broker, Redis or RabbitMQ (default redis://127.0.0.1:6379/1; also BENCH_BROKER_URL)",
    )
    parser.add_argument(
        "--only",
        default="",
        help="measure only these figures, e.g. 6 or 4,6 (the tenants of figure 4 are always created; "
        "the report then holds only those)",
    )
    parser.add_argument(
        "--light-migrations",
        action="store_true",
        help="figure 4 without the two all-tenants runs that open every tenant database again (one new "
        "migration each, --verify): for 10,000 tenants, where each takes minutes",
    )
    parser.add_argument(
        "--clients",
        help="figure 1's load generators and connections (default loadgen:16,loadgen:1,wrk:16,wrk:1; "
        "wrk items are skipped when wrk is not installed)",
    )
    parser.add_argument("--no-callgrind", action="store_true", help="figure 1 without the instruction counts")
    parser.add_argument("--sweep", action="store_true", help="only drop what killed benchmark runs left, then exit")
    parser.add_argument("--db-host", default=os.environ.get("BENCH_DB_HOST", "127.0.0.1"))
    parser.add_argument("--db-port", type=int, default=int(os.environ.get("BENCH_DB_PORT", "3306")))
    parser.add_argument("--db-user", default=os.environ.get("BENCH_DB_USER", "root"))
    parser.add_argument("--db-password", default=os.environ.get("BENCH_DB_PASSWORD", ""))
    parser.add_argument(
        "--db2-host", default=os.environ.get("BENCH_DB2_HOST", "127.0.0.1"), help="figures 7 and 8's server"
    )
    parser.add_argument("--db2-port", type=int, default=int(os.environ.get("BENCH_DB2_PORT", "3307")))
    parser.add_argument("--db2-user", default=os.environ.get("BENCH_DB2_USER", "root"))
    parser.add_argument("--db2-password", default=os.environ.get("BENCH_DB2_PASSWORD", ""))
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    db = {"host": args.db_host, "port": args.db_port, "user": args.db_user, "password": args.db_password}
    admin = MariaDBAdmin(**db)
    if args.sweep:
        leftovers_sweep(admin)
        return 0
    try:
        params = Params.from_args(args)
    except BenchError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 2
    command = "python -m bench.run" + (" " + " ".join(argv if argv is not None else sys.argv[1:])).rstrip()
    report = Report(params=params, command=os.environ.get("BENCH_COMMAND", command), started=datetime.now(UTC))
    machine = machine_describe()
    report.machine = machine.describe()
    report.load_before = load_average()
    try:
        report.mariadb = admin.version()
    except Exception as exc:
        print(f"bench: cannot reach MariaDB at {db['host']}:{db['port']} as {db['user']}: {exc}", file=sys.stderr)
        return 2
    prefix = f"m3bench{secrets.token_hex(3)}"
    run = Run(
        params=params,
        prefix=prefix,
        admin=admin,
        workdir=Path(tempfile.mkdtemp(prefix=f"{prefix}-")),
        report=report,
    )
    log(f"run {run.prefix}: {params.tenants} tenants, {machine.describe()}, load {report.load_before}")
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, _stop)
    p = params
    db2 = {"host": args.db2_host, "port": args.db2_port, "user": args.db2_user, "password": args.db2_password}
    # Figures 7 and 8 need the second server.
    db2_admin = MariaDBAdmin(**db2) if p.measures(7) or p.measures(8) else None
    second = None
    if db2_admin is not None:
        try:
            second = second_server_ensure(db2)
        except BenchError as exc:
            print(f"bench: {exc}", file=sys.stderr)
            return 2
    configure(run, db, db2 if db2_admin is not None else None)
    began = time.perf_counter()
    try:
        master_prepare(run)
        if db2_admin is not None:
            second_server_close()
        tenants_create(run)
        if p.measures(6):
            workers_measure(run)
        if p.measures(1) or p.measures(2) or p.measures(5):
            rows_seed(run)
        if p.measures(5):
            statements_measure(run)
        if p.measures(3):
            provisioning_measure(run)
        if p.measures(1) or p.measures(2):
            server_start(run)
        if p.measures(1):
            overhead_measure(run)
        if p.measures(2):
            scale_measure(run)
        if db2_admin is not None and p.measures(7):
            placement_measure(run, db2_admin)
        if db2_admin is not None and p.measures(8):
            move_measure(run, db2_admin)
    except BenchError as exc:
        print(f"bench: FAILED: {exc}", file=sys.stderr)
        return 1
    except SystemExit as exc:  # from `_stop`
        print(f"bench: STOPPED by a signal (exit {exc.code}); dropping what it created", file=sys.stderr)
        raise
    finally:
        server_stop(run)
        cleanup(run)
        if db2_admin is not None:
            databases, users = db2_admin.sweep(run.prefix)
            log(f"clean-up on db2: dropped {databases} databases and {users} users")
        if second is not None:
            second.stop()
    report.load_after = load_average()
    report.write(params.output)
    log(f"done in {time.perf_counter() - began:.0f} s; report written to {params.output}")
    return 0


def _stop(signum: int, frame: object) -> None:
    """SIGTERM or Ctrl-C: stop now (a migration over the tenants finishes those in flight and starts
    no other: `tenants_each`), drop what the run created, exit 128 + the signal (143, 130).

    A second signal during the clean-up acts as it would have without this handler."""
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    raise SystemExit(128 + signum)


if __name__ == "__main__":
    sys.exit(main())
