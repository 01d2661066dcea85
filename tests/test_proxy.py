"""The repository's nginx.conf in front of the project's gunicorn: slow clients stall nginx, not the API.

Forty clients that send their headers one byte every 2 s hold gunicorn's threads (one worker
of four threads here) so that normal requests wait; through nginx, normal requests keep
answering. Both run for real on 127.0.0.1 (nginx is Debian's `nginx-light`), with the embedded
SQLite default in a throw-away VAR_DIR; every process is stopped at the end.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}
SLOW_CLIENTS = 40
BYTE_EVERY = 2.0  # seconds between two bytes of a slow client's headers
LOAD_SECONDS = 4.5  # how long normal requests are sent while the slow clients trickle
ANSWER_WITHIN = 1.0  # seconds a normal request may take


def _nginx() -> str:
    # Debian puts it in /usr/sbin, which a non-root PATH often lacks.
    path = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin")
    if path is None:
        message = "nginx is not installed: `apt-get install nginx-light` to test the proxy configuration"
        if IN_CI:
            pytest.fail(message + " (CI=true: not skipped)")
        pytest.skip(message)
    return path


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_listening(port: int, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert process.poll() is None, log.read_text()[-3000:]
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
            return
        time.sleep(0.1)
    raise AssertionError(f"nothing listened on {port} within 30 s:\n{log.read_text()[-3000:]}")


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def render_nginx_conf(*, upstream: str, listen: str, max_body: int) -> str:
    """nginx.conf with the values the nginx image would put in from the proxy service's environment."""
    values = {
        "APP_UPSTREAM": upstream,
        "PROXY_LISTEN": listen,
        "PROXY_RESOLVER": "127.0.0.1",
        "MAX_REQUEST_BODY_SIZE": str(max_body),
    }
    text = (ROOT / "nginx.conf").read_text()
    for name, value in values.items():
        text = text.replace("${" + name + "}", value)
    assert "${" not in text.replace("${...}", ""), "nginx.conf uses a variable the test does not know"
    return text


@dataclass
class Stack:
    gunicorn_port: int
    nginx_port: int
    gunicorn: subprocess.Popen[bytes]


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    """gunicorn (the project's config, one worker of four threads) and nginx (the repo's config) in front."""
    nginx = _nginx()
    gunicorn_port, nginx_port = _free_port(), _free_port()
    env = {k: v for k, v in os.environ.items() if k not in {"CONFIG_FILE", "DJANGO_SETTINGS_MODULE", "SECRET_KEY"}}
    env.update(
        VAR_DIR=str(tmp_path / "var"),
        PORT=str(gunicorn_port),
        BIND_ADDRESS="127.0.0.1",
        WEB_CONCURRENCY="1",
        GUNICORN_THREADS="4",
        LOG_LEVEL="WARNING",
    )
    gunicorn_log = tmp_path / "gunicorn.log"
    with gunicorn_log.open("wb") as out:
        gunicorn = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "--config", "python:m3saas.gunicorn_conf", "m3saas.wsgi:application"],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    conf_dir = tmp_path / "nginx"
    conf_dir.mkdir()
    conf_dir.chmod(0o755)
    (conf_dir / "m3saas.conf").write_text(
        render_nginx_conf(upstream=f"127.0.0.1:{gunicorn_port}", listen=f"127.0.0.1:{nginx_port}", max_body=1000)
    )
    temp_paths = "\n".join(
        f"    {kind}_temp_path {conf_dir / kind};" for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    (conf_dir / "nginx.conf").write_text(
        f"""daemon off;
worker_processes 1;
{"user root;" if os.geteuid() == 0 else ""}
pid {conf_dir / "nginx.pid"};
error_log {conf_dir / "error.log"} warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
{temp_paths}
    include {conf_dir / "m3saas.conf"};
}}
"""
    )
    nginx_log = conf_dir / "error.log"
    command = [nginx, "-p", str(conf_dir), "-e", str(nginx_log), "-c", str(conf_dir / "nginx.conf")]
    checked = subprocess.run([*command, "-t"], capture_output=True, text=True, check=False)
    assert checked.returncode == 0, checked.stderr
    proxy = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    try:
        _wait_listening(gunicorn_port, gunicorn, gunicorn_log)
        _wait_listening(nginx_port, proxy, nginx_log)
        yield Stack(gunicorn_port=gunicorn_port, nginx_port=nginx_port, gunicorn=gunicorn)
    finally:
        _stop(proxy)
        _stop(gunicorn)


def _get(port: int, path: str, *, data: bytes | None = None, timeout: float = 10) -> tuple[int, dict]:
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=data)
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def _health_latencies_under_slowloris(port: int) -> list[float | None]:
    """Seconds each normal `/health` took while 40 slow clients trickled headers to `port` (None: no answer in time)."""
    stop = threading.Event()
    slow: list[socket.socket] = []
    for _ in range(SLOW_CLIENTS):
        sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        slow.append(sock)

    def trickle() -> None:
        while not stop.wait(BYTE_EVERY):
            for sock in slow:
                with contextlib.suppress(OSError):
                    sock.sendall(b"X")

    trickler = threading.Thread(target=trickle, daemon=True)
    trickler.start()
    latencies: list[float | None] = []
    try:
        time.sleep(0.3)  # let the server take the slow connections first
        deadline = time.monotonic() + LOAD_SECONDS
        while time.monotonic() < deadline:
            started = time.monotonic()
            try:
                status, _ = _get(port, "/health", timeout=ANSWER_WITHIN)
            except (OSError, TimeoutError):
                latencies.append(None)
                continue
            latencies.append(time.monotonic() - started if status == 200 else None)
            time.sleep(0.1)
    finally:
        stop.set()
        trickler.join(timeout=5)
        for sock in slow:
            sock.close()
    return latencies


def test_slow_clients_stall_gunicorn_directly_but_not_through_nginx(stack):
    assert _get(stack.nginx_port, "/health")[0] == 200

    proxied = _health_latencies_under_slowloris(stack.nginx_port)
    answered = [seconds for seconds in proxied if seconds is not None]
    print(f"through nginx: {len(answered)}/{len(proxied)} answered, slowest {max(answered, default=0):.3f} s")
    assert proxied and len(answered) == len(proxied), proxied
    assert max(answered) < ANSWER_WITHIN

    direct = _health_latencies_under_slowloris(stack.gunicorn_port)
    stalled = sum(seconds is None for seconds in direct)
    print(f"gunicorn directly: {stalled}/{len(direct)} requests got no answer within {ANSWER_WITHIN} s")
    # What the proxy prevents: straight at gunicorn, the same clients leave normal requests waiting.
    assert stalled >= 1, direct


def test_bodies_above_the_app_limit_get_the_json_413_from_nginx(stack):
    status, body = _get(stack.nginx_port, "/1/test/v1/animals", data=b'{"name": "' + b"x" * 2000 + b'"}')
    assert status == 413
    assert body["error"]["code"] == "request_too_large"


def test_a_stopped_app_is_a_json_503_from_nginx(stack):
    _stop(stack.gunicorn)
    status, body = _get(stack.nginx_port, "/health")
    assert status == 503
    assert body["error"]["code"] == "service_unavailable"
