"""A second real MariaDB server for the tests of tenants on several servers (MariaDB pass).

When nothing answers on `SECOND_HOST:SECOND_PORT`, the session fixture `second_mariadb`
initialises a data directory in a temporary folder (`mariadb-install-db`), starts `mariadbd`
on it and stops it (and removes the folder) when the session ends; a server already there
(`.ci/run` starts the same one) is used as it is. Its `root@127.0.0.1` has an empty password,
as `mariadb-install-db --auth-root-authentication-method=normal` makes it.

Without `mariadbd` (a laptop), the tests that need it skip with the reason; under CI=true they
fail instead. `python -m tests.mariadb_second start|stop DIR` is the same start-up for scripts.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

SECOND_HOST = "127.0.0.1"
SECOND_PORT = int(os.environ.get("M3SAAS_SECOND_DB_PORT", "3307"))
SECOND_USER = "root"
SECOND_PASSWORD = ""
START_TIMEOUT_SECONDS = 60


@dataclass
class SecondServer:
    """Where the second server answers, and the process (None: it was already running)."""

    host: str
    port: int
    user: str
    password: str
    process: subprocess.Popen[bytes] | None = None
    folder: Path | None = None

    def stop(self) -> None:
        """Stop the server if this process started it, and remove its data directory."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)


def answers(host: str = SECOND_HOST, port: int = SECOND_PORT) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def _tool(name: str) -> str | None:
    return shutil.which(name) or next(
        (str(p) for p in (Path("/usr/sbin") / name, Path("/usr/bin") / name) if p.exists()), None
    )


def missing_tools() -> str | None:
    """Why a second server cannot be started here (None: it can)."""
    for name in ("mariadbd", "mariadb-install-db"):
        if _tool(name) is None:
            return f"{name} is not installed (Debian: apt-get install mariadb-server) to run a second MariaDB"
    return None


def _login_works(port: int) -> bool:
    import MySQLdb

    try:
        MySQLdb.connect(host=SECOND_HOST, port=port, user=SECOND_USER, password=SECOND_PASSWORD).close()
    except MySQLdb.Error:
        return False
    return True


def start(folder: Path, *, port: int = SECOND_PORT) -> SecondServer:
    """Initialise a data directory in `folder` and start `mariadbd` on `port`; wait until root logs in."""
    problem = missing_tools()
    if problem:
        raise RuntimeError(problem)
    data = folder / "data"
    as_root = os.geteuid() == 0
    user = ["--user=mysql"] if as_root else []
    if as_root:
        shutil.chown(folder, "mysql", "mysql")
    log = folder / "server.log"
    subprocess.run(
        [
            str(_tool("mariadb-install-db")),
            *user,
            f"--datadir={data}",
            "--auth-root-authentication-method=normal",
            "--skip-test-db",
        ],
        check=True,
        capture_output=True,
    )
    with log.open("wb") as out:
        process = subprocess.Popen(
            [
                str(_tool("mariadbd")),
                "--no-defaults",
                *user,
                f"--datadir={data}",
                f"--port={port}",
                f"--bind-address={SECOND_HOST}",
                f"--socket={folder / 's.sock'}",
                f"--pid-file={folder / 'mariadbd.pid'}",
                "--skip-name-resolve",
                "--innodb-buffer-pool-size=32M",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    server = SecondServer(SECOND_HOST, port, SECOND_USER, SECOND_PASSWORD, process=process, folder=folder)
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            server.folder = None  # keep the log for the message
            raise RuntimeError(f"mariadbd exited ({process.returncode}); see {log}")
        if answers(SECOND_HOST, port) and _login_works(port):
            return server
        time.sleep(0.2)
    server.stop()
    raise RuntimeError(f"mariadbd did not answer on {SECOND_HOST}:{port} within {START_TIMEOUT_SECONDS} s")


def second_server_up() -> SecondServer:
    """The second server: the one answering already, else one started now in a temporary folder."""
    if answers():
        return SecondServer(SECOND_HOST, SECOND_PORT, SECOND_USER, SECOND_PASSWORD)
    return start(Path(tempfile.mkdtemp(prefix="m3saas-mariadb2-")))
