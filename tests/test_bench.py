"""The benchmark still works end to end (quick mode); no timing is asserted, only that it runs and reports."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from bench.loadgen import Spec, run

BASE_DIR = Path(__file__).resolve().parent.parent


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    seen: list[tuple[str, str | None, str | None]] = []  # path, X-Bench-Variant, Authorization

    def do_GET(self) -> None:
        self.seen.append((self.path, self.headers.get("X-Bench-Variant"), self.headers.get("Authorization")))
        status = 200 if self.path in ("/ok", "/ok2") else 404
        body = b"[]"
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def http_server() -> Iterator[int]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    _Handler.seen = []
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def test_load_generator_stops_at_its_request_budget(http_server):
    result = run(Spec(host="127.0.0.1", port=http_server, paths=["/ok"], concurrency=2, duration=30, max_requests=40))
    assert result["requests"] == 40
    assert result["errors"] == 0
    assert len(result["latencies_ms"]) == 40


def test_load_generator_counts_every_non_200_as_an_error(http_server):
    result = run(
        Spec(host="127.0.0.1", port=http_server, paths=["/missing"], concurrency=2, duration=30, max_requests=10)
    )
    assert result["errors"] == 10
    assert "HTTP 404" in result["first_error"]


def test_load_generator_sends_each_request_with_its_own_headers(http_server):
    requests = [["/ok", {"X-Bench-Variant": "0"}], ["/ok2", {"X-Bench-Variant": "1", "Authorization": "Bearer k"}]]
    result = run(Spec(host="127.0.0.1", port=http_server, paths=[], requests=requests, concurrency=2, max_requests=40))
    assert result["requests"] == 40 and result["errors"] == 0
    assert set(_Handler.seen) == {("/ok", "0", None), ("/ok2", "1", "Bearer k")}
    # Each connection walks the pairs in a cycle: the two are interleaved, half and half.
    assert sum(1 for path, _, _ in _Handler.seen if path == "/ok") == 20
    assert sorted(result["latencies_by_request"]) == ["0", "1"]
    assert [len(v) for v in result["latencies_by_request"].values()] == [20, 20]


def test_meter_counts_each_threads_cpu_per_request_by_variant(tmp_path, monkeypatch):
    """`bench/meter.py` as gunicorn calls it: the CPU a worker thread used since its previous
    request goes to this request's variant; a thread's first request and an unmarked one are kept
    apart; two workers add up."""
    import time
    from types import SimpleNamespace

    from bench import meter

    path = tmp_path / "meter.bin"
    meter.meter_file_create(path)
    monkeypatch.setenv("BENCH_METER_FILE", str(path))
    monkeypatch.setattr(meter, "_state", {})
    monkeypatch.setattr(meter, "_local", threading.local())

    def request(variant: str | None) -> SimpleNamespace:
        headers = [("HOST", "x")] + ([("X-BENCH-VARIANT", variant)] if variant is not None else [])
        return SimpleNamespace(headers=headers)

    def busy(seconds: float) -> None:
        began = time.thread_time()
        while time.thread_time() - began < seconds:
            pass

    meter.post_fork(None, SimpleNamespace(age=1))
    meter.post_request(None, request("0"), {}, None)  # the thread's first: no start, not counted
    busy(0.02)
    meter.post_request(None, request("1"), {}, None)
    busy(0.01)
    meter.post_request(None, request("0"), {}, None)
    meter.post_request(None, request(None), {}, None)
    meter.post_request(None, request("99"), {}, None)
    meter.post_request(None, request("²"), {}, None)  # a digit to str.isdigit, not to int()
    meter.post_fork(None, SimpleNamespace(age=2))  # another worker, its own slot
    meter.post_request(None, request("1"), {}, None)
    totals = meter.meter_read(path)
    assert [count for count, _ in totals] == [1, 2, 0, 0, 0, 0, 0, 3]
    assert 0.02 <= totals[1][1] / 1e9 < 0.05
    assert 0.01 <= totals[0][1] / 1e9 < 0.02


def test_a_zipf_mix_favours_the_first_tenants_and_is_the_same_for_a_seed():
    from bench.measures import zipf_sample, zipf_top_share

    paths = [f"/{i}/test/v1/animals" for i in range(1, 1001)]
    sample = zipf_sample(paths, s=1.1, count=20_000, seed=7)
    assert sample == zipf_sample(paths, s=1.1, count=20_000, seed=7)
    assert sample.count(paths[0]) > sample.count(paths[1]) > sample.count(paths[99])
    assert 0.4 < zipf_top_share(sample, top=10) < 0.7
    assert zipf_top_share(paths, top=10) == pytest.approx(0.01)


def test_figure_1_clients_are_parsed_and_refused_in_one_line():
    from bench.common import BenchError, _clients

    assert _clients("loadgen:16, wrk:1") == (("loadgen", 16), ("wrk", 1))
    for bad in ("ab:16", "wrk", "wrk:0", "loadgen:x", "wrk:²"):
        with pytest.raises(BenchError, match="--clients"):
            _clients(bad)


def test_an_output_that_names_a_directory_is_refused_before_the_run(tmp_path):
    from bench.common import BenchError, Params
    from bench.run import parse_args

    with pytest.raises(BenchError, match="--output names a directory"):
        Params.from_args(parse_args(["--output", str(tmp_path)]))
    # A file in a directory still to be made is fine: the report makes it.
    wanted = tmp_path / "var" / "report.md"
    assert Params.from_args(parse_args(["--output", str(wanted)])).output == wanted


@pytest.mark.skipif(not shutil.which("wrk"), reason="wrk is not installed (make bench-deps)")
def test_wrk_reports_requests_percentiles_and_errors(http_server):
    from bench.wrk import wrk_run

    ok = wrk_run(port=http_server, path="/ok", connections=2, duration=1, headers={"X-Test": "1"})
    assert ok["requests"] > 0
    assert ok["errors"] == 0
    assert 0 < ok["p50"] <= ok["p99"] <= ok["max"]
    missing = wrk_run(port=http_server, path="/missing", connections=1, duration=1, headers={})
    assert missing["errors"] == missing["requests"] > 0
    assert "/missing" in missing["first_error"]


@pytest.mark.skipif(not shutil.which("wrk"), reason="wrk is not installed (make bench-deps)")
def test_wrk_walks_requests_with_their_own_headers(http_server):
    from bench.wrk import wrk_run

    requests = [("/ok", {"X-Bench-Variant": "0"}), ("/ok2", {"X-Bench-Variant": "1", "Authorization": "Bearer k"})]
    done = wrk_run(port=http_server, path="/ignored", connections=1, duration=1, headers={}, requests=requests)
    assert done["requests"] > 10 and done["errors"] == 0
    assert set(_Handler.seen) == {("/ok", "0", None), ("/ok2", "1", "Bearer k")}
    plain = sum(1 for path, _, _ in _Handler.seen if path == "/ok")
    assert abs(2 * plain - len(_Handler.seen)) <= 1  # one after the other
    with pytest.raises(ValueError, match="plain ASCII"):
        wrk_run(port=http_server, path="/", connections=1, duration=1, headers={}, requests=[('/"', {})])


@pytest.mark.mariadb
def test_quick_benchmark_runs_end_to_end_and_drops_what_it_created(tmp_path):
    import MySQLdb
    from django.conf import settings

    db = settings.M3SAAS_CONFIG.database
    output = tmp_path / "performance.md"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.run",
            "--quick",
            "--output",
            str(output),
            "--db-host",
            db.host,
            "--db-port",
            str(db.port),
            "--db-user",
            db.user,
            "--db-password",
            db.password,
        ],
        cwd=BASE_DIR,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    report = output.read_text()
    for title in (
        "## 1. Request overhead",
        "## 2. Scale in tenants",
        "## 3. Provisioning",
        "## 4. Migrating many tenants",
        "## 5. Statements per request",
        "## 6. Migrating many tenants on Celery workers",
        "## 8. Moving a tenant",
    ):
        assert title in report
    # Figure 1 at 16 and 1 connections (and with wrk when installed), figure 2 with a Zipf mix.
    assert "**loadgen, 16 connections**" in report and "**loadgen, 1 connection**" in report
    assert ("**wrk, 16 connections**" in report) == bool(shutil.which("wrk"))
    assert "| 1. p99 tenant-routed / plain, loadgen, 16 connections |" in report
    assert "| 1. plain / tenant-routed worker-thread CPU per request, interleaved, loadgen, 16 connections |" in report
    assert "keyed vs plain with the header" in report
    assert "| 1. p99 tenant-routed / plain, interleaved, loadgen, 16 connections |" in report
    assert "Zipf s=1.1" in report
    prefix = re.search(r"run (m3bench[0-9a-f]{6}):", done.stdout)
    assert prefix is not None, done.stdout[-2000:]
    if "figure 6 skipped" not in done.stdout:  # the broker answered: both worker counts were timed
        assert "| 2 worker processes |" in report and "| 4 worker processes |" in report
        _redis_keys_absent(prefix.group(1))
    conn = MySQLdb.connect(host=db.host, port=db.port, user=db.user, password=db.password)
    try:
        with conn.cursor() as cur:
            like = prefix.group(1) + "\\_%"
            cur.execute("SHOW DATABASES LIKE %s", (like,))
            assert cur.fetchall() == ()
            cur.execute("SELECT User FROM mysql.user WHERE User LIKE %s", (like,))
            assert cur.fetchall() == ()
    finally:
        conn.close()


def _redis_keys_absent(prefix: str) -> None:
    """The run's queues, bindings and results are gone from the broker."""
    import redis

    client = redis.Redis(host="127.0.0.1", port=6379, db=1)  # the bench's default broker
    try:
        assert client.keys(f"*{prefix}*") == []
    finally:
        client.close()


def test_benchmark_refuses_an_unknown_figure_in_one_line(capsys):
    from bench.run import main

    assert main(["--quick", "--only", "9"]) == 2
    assert capsys.readouterr().err == "bench: --only takes figure numbers 1-8, not [9]\n"


@pytest.mark.mariadb
def test_benchmark_says_why_it_skips_the_workers_figure_when_the_broker_is_down(tmp_path):
    from django.conf import settings

    db = settings.M3SAAS_CONFIG.database
    output = tmp_path / "performance.md"
    done = subprocess.run(
        [
            *(sys.executable, "-m", "bench.run", "--quick", "--only", "6", "--output", str(output)),
            *("--broker", "redis://127.0.0.1:1/0", "--db-host", db.host, "--db-port", str(db.port)),
            *("--db-user", db.user, "--db-password", db.password),
        ],
        cwd=BASE_DIR,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "figure 6 skipped: the broker does not answer at 127.0.0.1:1" in done.stdout
    report = output.read_text()
    assert "## 6. Migrating many tenants on Celery workers\n\nSkipped: the broker does not answer" in report
    assert "## 2. Scale in tenants" not in report


def test_meter_profiles_each_variant_and_diffs_them(tmp_path, monkeypatch):
    """`BENCH_METER_PROFILE`: a profile per variant, merged over the worker's threads, written
    when the worker stops; `python -m bench.meter <dir> a b` names what only one variant ran."""
    from types import SimpleNamespace

    from bench import meter

    meter_file, profiles = tmp_path / "meter.bin", tmp_path / "profiles"
    profiles.mkdir()
    meter.meter_file_create(meter_file)
    monkeypatch.setenv("BENCH_METER_FILE", str(meter_file))
    monkeypatch.setenv("BENCH_METER_PROFILE", str(profiles))
    monkeypatch.setattr(meter, "_state", {})
    monkeypatch.setattr(meter, "_local", threading.local())

    def only_in_b() -> int:
        return sum(range(2000))

    def serve(variant: str, work: Any = None) -> None:
        req = SimpleNamespace(headers=[("X-BENCH-VARIANT", variant)])
        meter.pre_request(None, req)
        if work is not None:
            work()
        meter.post_request(None, req, {}, None)

    meter.post_fork(None, SimpleNamespace(age=1))
    for _ in range(3):
        serve("0")
        serve("1", only_in_b)
    other = threading.Thread(target=serve, args=("1", only_in_b))
    other.start()
    other.join()
    meter.worker_exit(None, None)
    assert sorted(p.name.split("-")[0] for p in profiles.glob("*.prof")) == ["v0", "v1"]
    done = subprocess.run(
        [sys.executable, "-m", "bench.meter", str(profiles), "0", "1"],
        cwd=BASE_DIR,
        capture_output=True,
        text=True,
        check=True,
    )
    assert "variant 0: 3 requests" in done.stdout and "variant 1: 4 requests" in done.stdout
    assert "(only_in_b)  (0.00 -> 1.00)" in done.stdout


@pytest.fixture
def sampled_account() -> Iterator[tuple[Any, str, Any]]:
    """A MariaDB account `<prefix>_s` for the connection sampler to count: (admin, prefix, connect)."""
    import secrets

    import MySQLdb
    from django.conf import settings

    from bench.system import MariaDBAdmin

    db = settings.M3SAAS_CONFIG.database
    admin = MariaDBAdmin(host=db.host, port=db.port, user=db.user, password=db.password)
    prefix = f"smp{secrets.token_hex(3)}"
    password = secrets.token_hex(8)
    root = admin.connect()
    with root.cursor() as cur:
        cur.execute(f"CREATE USER '{prefix}_s'@'%%' IDENTIFIED BY %s", (password,))

    def connect() -> Any:
        return MySQLdb.connect(host=db.host, port=db.port, user=f"{prefix}_s", password=password)

    try:
        yield admin, prefix, connect
    finally:
        with root.cursor() as cur:
            cur.execute(f"DROP USER '{prefix}_s'@'%'")
        root.close()


@pytest.mark.mariadb
def test_connection_sampler_counts_sessions_held_above_the_bound(sampled_account):
    from bench.system import ConnectionSampler

    admin, prefix, connect = sampled_account
    held = [connect() for _ in range(3)]
    try:
        with ConnectionSampler(admin, tenant_user_prefix=prefix, master_database="-", bound=2) as sampler:
            threading.Event().wait(0.5)
        assert sampler.peak_tenant == 3
        assert sampler.over_bound > 0 and sampler.over_bound_held == sampler.over_bound
    finally:
        for conn in held:
            conn.close()


@pytest.mark.mariadb
def test_connection_sampler_does_not_count_a_turnover_of_short_sessions_as_held(sampled_account):
    """Sessions above the bound that are replaced by others before the second look are not held,
    even when the second look sees as many: the sessions are told apart by their ids."""
    from bench.system import ConnectionSampler

    admin, prefix, connect = sampled_account
    held = [connect() for _ in range(2)]
    stop = threading.Event()

    def turnover() -> None:
        while not stop.is_set():
            conn = connect()
            stop.wait(0.003)
            conn.close()

    thread = threading.Thread(target=turnover)
    try:
        with ConnectionSampler(admin, tenant_user_prefix=prefix, master_database="-", bound=2, recheck=0.1) as sampler:
            thread.start()
            threading.Event().wait(1.5)
        assert sampler.over_bound > 0
        assert sampler.over_bound_held == 0
    finally:
        stop.set()
        thread.join(timeout=10)
        for conn in held:
            conn.close()
