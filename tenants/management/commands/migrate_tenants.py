"""Migrate every tenant database in parallel and report each tenant's result."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from tenants.services import TenantMigrationResult, tenants_migrate_all


class Command(BaseCommand):
    help = "Create missing tenant databases and apply pending module migrations to every tenant."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--workers", type=int, default=None, help="Tenants migrated at once.")

    def handle(self, *args: Any, **options: Any) -> None:
        def report(result: TenantMigrationResult) -> None:
            if result.ok:
                what = f"{len(result.applied)} applied" if result.applied else "up to date"
                self.stdout.write(f"{result.tenant}: OK, {what} ({result.seconds:.2f}s)")
            else:
                self.stderr.write(f"{result.tenant}: FAILED: {result.error}")

        results = tenants_migrate_all(workers=options["workers"], on_result=report)
        failed = [r.tenant for r in results if not r.ok]
        self.stdout.write(f"{len(results) - len(failed)} of {len(results)} tenants migrated.")
        if failed:
            raise CommandError(f"{len(failed)} tenant(s) failed: {', '.join(failed)}")
