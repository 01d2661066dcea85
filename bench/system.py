"""What the benchmark needs from the machine: its description, processes, memory, MariaDB admin."""

from __future__ import annotations

import os
import platform
import re
import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# Bench-owned names: `m3bench` + a run id; never anything else is created or dropped.
BENCH_NAME_RE = re.compile(r"^m3bench[0-9a-f]{6}_[a-z0-9_]+$")


@dataclass(frozen=True)
class Machine:
    cpus: int
    cpu_model: str
    memory_gib: float
    kernel: str
    python: str

    def describe(self) -> str:
        return (
            f"{self.cpus} CPU ({self.cpu_model}), {self.memory_gib:.1f} GiB RAM, "
            f"Linux {self.kernel}, Python {self.python}"
        )


def machine_describe() -> Machine:
    cpu_model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory_kib = 0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory_kib = int(line.split()[1])
    except OSError:
        pass
    return Machine(
        cpus=len(os.sched_getaffinity(0)),
        cpu_model=cpu_model,
        memory_gib=memory_kib / 1024 / 1024,
        kernel=platform.release(),
        python=platform.python_version(),
    )


def load_average() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "unknown"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def child_pids(parent: int) -> list[int]:
    """Pids whose parent is `parent` (the gunicorn workers of its master)."""
    children = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # Fields after the command name, which is in parentheses and may hold spaces.
        fields = stat[stat.rfind(")") + 2 :].split()
        if int(fields[1]) == parent:
            children.append(int(entry.name))
    return sorted(children)


def rss_mib(pid: int) -> float:
    """Resident set size of `pid` in MiB, from /proc."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time `pid` has used, from /proc."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rfind(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class MariaDBAdmin:
    """Root-level statements of the benchmark: its own master database, sampling, clean-up."""

    def __init__(self, *, host: str, port: int, user: str, password: str) -> None:
        self.params = {"host": host, "port": port, "user": user, "password": password}

    def connect(self) -> Any:
        import MySQLdb

        return MySQLdb.connect(**self.params, multi_statements=False, autocommit=True)

    def execute(self, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        conn = self.connect()
        try:
            with conn.cursor() as cur:
                cur.execute(sql, args or None)
                return list(cur.fetchall() or [])
        finally:
            conn.close()

    def version(self) -> str:
        return str(self.execute("SELECT VERSION()")[0][0])

    def max_connections(self) -> int:
        return int(self.execute("SELECT @@max_connections")[0][0])

    def logins(self) -> int:
        """Connections the server has accepted since it started (every client, not only ours)."""
        return int(self.execute("SHOW GLOBAL STATUS LIKE 'Connections'")[0][1])

    def local_pid(self) -> int | None:
        """The server's pid when it runs on this machine (for its CPU time), else None."""
        try:
            pid = int(Path(str(self.execute("SELECT @@pid_file")[0][0])).read_text().split()[0])
            comm = Path(f"/proc/{pid}/comm").read_text().strip()
        except (OSError, ValueError, IndexError):
            return None
        return pid if comm in ("mariadbd", "mysqld") else None

    def database_create(self, name: str) -> None:
        self.execute(f"CREATE DATABASE {_quoted(name)} CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")

    def sweep(self, prefix: str, *, workers: int = 4) -> tuple[int, int]:
        """Drop every database and user whose name starts with `prefix` + `_`; return the counts."""
        from concurrent.futures import ThreadPoolExecutor

        like = prefix.replace("_", "\\_") + "\\_%"
        databases = [row[0] for row in self.execute("SHOW DATABASES LIKE %s", (like,))]
        users = self.execute("SELECT User, Host FROM mysql.user WHERE User LIKE %s", (like,))

        def drop_database(name: str) -> None:
            self.execute(f"DROP DATABASE IF EXISTS {_quoted(name)}")

        def drop_user(user_host: tuple[Any, ...]) -> None:
            self.execute("DROP USER IF EXISTS %s@%s", (user_host[0], user_host[1]))

        with ThreadPoolExecutor(max_workers=workers) as pool:
            list(pool.map(drop_database, databases))
            list(pool.map(drop_user, users))
        return len(databases), len(users)

    def leftover_prefixes(self) -> list[str]:
        """Run prefixes of earlier benchmark runs that were killed before their clean-up."""
        found = {row[0].split("_", 1)[0] for row in self.execute("SHOW DATABASES LIKE 'm3bench%'")}
        found |= {
            row[0].split("_", 1)[0] for row in self.execute("SELECT User FROM mysql.user WHERE User LIKE 'm3bench%'")
        }
        return sorted(p for p in found if BENCH_NAME_RE.match(f"{p}_x"))


def _quoted(name: str) -> str:
    if not BENCH_NAME_RE.match(name):
        raise ValueError(f"not a benchmark database name: {name!r}")
    return f"`{name}`"


class ConnectionSampler:
    """Polls MariaDB's process list in a thread: peaks of the tenants' and master's connections,
    and how many samples saw more tenant connections than `bound`.

    A sample above the bound is taken again `recheck` seconds later: a session a worker has just
    closed (its `COM_QUIT` sent, no answer awaited) can still be listed by the server for a moment
    after the worker opened the next one. `over_bound_held` counts the samples of which more than
    the bound's worth of the same sessions (by id) are still listed then: connections held, not
    sessions on their way out, nor other ones that opened and closed in between.
    """

    def __init__(
        self,
        admin: MariaDBAdmin,
        *,
        tenant_user_prefix: str,
        master_database: str,
        bound: int,
        interval: float = 0.02,
        recheck: float = 0.01,
    ) -> None:
        self.admin = admin
        self.like = tenant_user_prefix.replace("_", "\\_") + "\\_%"
        self.master_database = master_database
        self.bound = bound
        self.interval = interval
        self.recheck = recheck
        self.peak_tenant = self.peak_master = self.samples = self.over_bound = self.over_bound_held = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._conn: Any = None

    def _listed(self) -> tuple[set[int], int]:
        """Open connections now, this sampler's own excluded: the tenant users' session ids, and how
        many sessions are on the master database."""
        with self._conn.cursor() as cur:
            cur.execute(
                "SELECT ID, USER LIKE %s, DB <=> %s FROM information_schema.PROCESSLIST WHERE ID <> CONNECTION_ID()",
                (self.like, self.master_database),
            )
            rows = cur.fetchall()
        return {int(row[0]) for row in rows if row[1]}, sum(1 for row in rows if row[2])

    def reset(self) -> None:
        self.peak_tenant = self.peak_master = self.samples = self.over_bound = self.over_bound_held = 0

    def _run(self) -> None:
        while not self._stop.is_set():
            tenant, master = self._listed()
            self.peak_tenant = max(self.peak_tenant, len(tenant))
            self.peak_master = max(self.peak_master, master)
            self.samples += 1
            if len(tenant) > self.bound:
                self.over_bound += 1
                time.sleep(self.recheck)
                self.over_bound_held += len(tenant & self._listed()[0]) > self.bound
            self._stop.wait(self.interval)

    def __enter__(self) -> ConnectionSampler:
        self._conn = self.admin.connect()
        self._thread = threading.Thread(target=self._run, name="connection-sampler", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._conn.close()


def wait_until(predicate: Any, *, timeout: float, interval: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return False
