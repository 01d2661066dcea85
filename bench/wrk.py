"""`wrk` as a second load generator (C, event-driven: far less client CPU per request than
`bench/loadgen.py`), with the same raw result shape but percentiles instead of every latency.

`wrk` is a Debian package; `make bench` installs it when run as root with apt-get
(`bench-deps`). Without it, figure 1 says so and uses the Python load generator only.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

# Written by wrk's `done` callback: totals and the latency percentiles (wrk measures in µs).
_REPORT_LUA = """
done = function(summary, latency, requests)
  local errors = summary.errors.connect + summary.errors.read + summary.errors.write
    + summary.errors.status + summary.errors.timeout
  io.write(string.format(
    'WRKJSON {"requests": %d, "elapsed": %f, "errors": %d, "p50": %f, "p99": %f, "max": %f}\\n',
    summary.requests, summary.duration / 1e6, errors,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, latency.max / 1000))
end
"""


def _lua_string(text: str) -> str:
    if not text.isascii() or not text.isprintable() or '"' in text or "\\" in text:
        raise ValueError(f"not a plain ASCII request part: {text!r}")
    return f'"{text}"'


def _requests_lua(requests: list[tuple[str, dict[str, str]]]) -> str:
    """wrk's `request` callback walking `requests` (path, headers) in a cycle, per connection thread."""
    entries = []
    for path, headers in requests:
        table = ", ".join(f"[{_lua_string(k)}] = {_lua_string(v)}" for k, v in headers.items())
        entries.append(f"{{{_lua_string(path)}, {{{table}}}}}")
    return (
        "local wanted = {" + ", ".join(entries) + "}\n"
        "local made = {}\n"
        "local turn = 0\n"
        "init = function(args)\n"
        "  for i, r in ipairs(wanted) do made[i] = wrk.format('GET', r[1], r[2]) end\n"
        "  turn = math.random(#made) - 1\n"
        "end\n"
        "request = function()\n"
        "  turn = turn % #made + 1\n"
        "  return made[turn]\n"
        "end\n"
    )


def wrk_path() -> str | None:
    return shutil.which("wrk")


def wrk_run(
    *,
    port: int,
    path: str,
    connections: int,
    duration: float,
    headers: dict[str, str],
    timeout: float = 30.0,
    requests: list[tuple[str, dict[str, str]]] | None = None,
) -> dict[str, Any]:
    """Drive `GET path` with `connections` keep-alive connections for `duration` seconds; with
    `requests` ((path, headers) pairs), those in a cycle instead, one after the other on each
    connection thread of wrk (which then ignores `path`'s own request).

    Returns requests, errors (non-2xx/3xx answers and socket errors), elapsed seconds, and p50,
    p99 and max latency in milliseconds.
    """
    binary = wrk_path()
    if binary is None:
        raise FileNotFoundError("wrk is not installed")
    with tempfile.TemporaryDirectory(prefix="bench-wrk-") as tmp:
        script = Path(tmp) / "report.lua"
        script.write_text(_REPORT_LUA + (_requests_lua(requests) if requests else ""))
        command = [
            binary,
            f"--threads={min(2, connections)}",
            f"--connections={connections}",
            f"--duration={max(1, round(duration))}s",
            f"--timeout={timeout:g}s",
            f"--script={script}",
            "--header=Accept: application/json",
            *(f"--header={name}: {value}" for name, value in headers.items()),
            f"http://127.0.0.1:{port}{path}",
        ]
        done = subprocess.run(command, capture_output=True, text=True, timeout=duration + 120, check=False)
    for line in done.stdout.splitlines():
        if line.startswith("WRKJSON "):
            result: dict[str, Any] = json.loads(line[len("WRKJSON ") :])
            result["first_error"] = f"{path}: {result['errors']} error(s) reported by wrk" if result["errors"] else ""
            return result
    raise RuntimeError(f"wrk gave no result (exit {done.returncode}): {(done.stderr or done.stdout)[-500:]}")
