"""The database servers: tenants, capacity, state and whether each answers now."""

from __future__ import annotations

from typing import Any

from django.core.management.base import CommandError, CommandParser

from m3saas.commands import PlatformCommand
from tenants.servers import ServerSummary, server_list, server_problem


class Command(PlatformCommand):
    help = (
        "List the database servers (the default one of tenants.database and those of tenants.servers) with "
        "their tenants, capacity, state and reachability. Exits non-zero when one cannot be reached or has no "
        "credentials in the config file. Changes nothing but adding rows for servers new in the config."
    )
    quiet_drops_output = False

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--no-check",
            action="store_true",
            help="Do not connect to the servers (reachability not shown; one without credentials still fails).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        summaries = server_list()
        rows: list[tuple[str, ...]] = [("server", "state", "tenants", "capacity", "free", "address", "reachable")]
        down: list[str] = []
        problems: list[str] = []
        for summary in summaries:
            reachable = "not checked"
            # A server without credentials cannot be used, checked or not (no connection is tried).
            if not options["no_check"] or not summary.configured:
                problem = server_problem(summary.name)
                reachable = "yes" if problem is None else "NO"
                if problem is not None:
                    down.append(summary.name)
                    problems.append(f"{summary.name}: {problem}")
            rows.append(self.row(summary, reachable))
        widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
        for row in rows:
            self.stdout.write("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
        total = sum(s.tenants for s in summaries)
        self.stdout.write(f"{len(summaries)} server(s), {total} tenant(s).")
        for line in problems:
            self.stderr.write(line)
        if down:
            raise CommandError(f"{len(down)} server(s) cannot be used: {', '.join(down)}")

    @staticmethod
    def row(summary: ServerSummary, reachable: str) -> tuple[str, ...]:
        capacity = "unlimited" if summary.capacity < 1 else str(summary.capacity)
        free = "unlimited" if summary.free is None else str(summary.free)
        address = f"{summary.host}:{summary.port}" if summary.port else summary.host
        return (summary.name, summary.state, str(summary.tenants), capacity, free, address, reachable)
