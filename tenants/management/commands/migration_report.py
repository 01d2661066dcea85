"""Which tenant is behind on which migration, and how its last migration run went."""

from __future__ import annotations

from typing import Any

from django.core.management.base import CommandError, CommandParser
from django.utils import timezone

from m3saas.commands import PlatformCommand
from tenants.reports import TenantMigrationStatus, tenants_migration_status


class Command(PlatformCommand):
    help = (
        "List the tenants whose database lacks migrations (or does not exist, or whose last migration run "
        "failed), with the missing migrations. Changes nothing."
    )
    quiet_drops_output = False

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--all", action="store_true", help="List up-to-date tenants too.")
        parser.add_argument("--check", action="store_true", help="Exit non-zero when any tenant is behind.")

    def handle(self, *args: Any, **options: Any) -> None:
        statuses = tenants_migration_status()
        behind = [s for s in statuses if s.behind]
        for status in statuses if options["all"] else behind:
            self.stdout.write(self.describe(status))
        self.stdout.write(f"{len(behind)} of {len(statuses)} tenant(s) behind.")
        if options["check"] and behind:
            raise CommandError(f"{len(behind)} tenant(s) behind: run manage.py migrate_tenants")

    @staticmethod
    def describe(status: TenantMigrationStatus) -> str:
        lines = [f"{status.tenant} (#{status.tenant_id}, {status.schema_state}):"]
        if status.error is not None:
            lines.append(f"  cannot be read: {status.error}")
        elif not status.database_exists:
            lines.append(f"  database missing; {len(status.pending)} migration(s) to apply")
        elif status.pending:
            lines.append(f"  {len(status.pending)} migration(s) to apply")
        else:
            lines.append("  up to date")
        lines.extend(f"    {name}" for name in status.pending)
        run = status.last_run
        if run is None:
            lines.append("  never migrated by migrate_tenants, the admin or /migrate")
        else:
            when = timezone.localtime(run.started_at).strftime("%Y-%m-%d %H:%M:%S")
            line = f"  last run {when} ({run.trigger}): {run.status}"
            if run.status == run.Status.RUNNING:
                line += " (still running, or interrupted)"
            if run.error:
                line += f": {run.error}"
            lines.append(line)
        return "\n".join(lines)
