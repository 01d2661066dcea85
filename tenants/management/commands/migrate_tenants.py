"""Migrate every tenant database in parallel; record and report each tenant's result."""

from __future__ import annotations

from typing import Any

from django.core.management.base import CommandError, CommandParser

from m3saas.commands import PlatformCommand
from tenants.services import Seeding, TenantMigrationResult, tenants_migrate_all
from tenants.workers import no_wait_argument_add, no_wait_check


class Command(PlatformCommand):
    audited = True
    help = (
        "Create missing tenant databases and apply pending module migrations to every tenant (or, with "
        "--failed, to those whose last run failed or never finished). Each result is recorded in the master "
        "database; the command carries on past a failing tenant and exits non-zero if any failed."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--workers", type=int, default=None, help="Tenants migrated at once.")
        parser.add_argument(
            "--failed", action="store_true", help="Only the tenants whose last run failed or never finished."
        )
        parser.add_argument("--seed", action="store_true", help="Also apply each tenant's main seeds.")
        no_wait_argument_add(parser)

    def handle(self, *args: Any, **options: Any) -> None:
        done = failed = 0
        tty = self.stdout.isatty()
        total: list[int] = []

        def report(result: TenantMigrationResult) -> None:
            nonlocal done, failed
            done += 1
            failed += 0 if result.ok else 1
            count = f"[{done}/{total[0]}]" if total else f"[{done}]"
            if tty:
                self.stdout.write("\r\033[K", ending="")
            if result.ok:
                what = f"{len(result.applied)} applied" if result.applied else "up to date"
                seeded = ", seeded" if result.seeded else ""
                self.stdout.write(f"{count} {result.tenant}: OK, {what}{seeded} ({result.seconds:.2f}s)")
            else:
                self.stderr.write(f"{count} {result.tenant}: FAILED: {result.error}")
            if tty and total:
                self.stdout.write(self.progress(done, total[0], failed), ending="")
                self.stdout.flush()

        def start(count: int) -> None:
            total.append(count)
            if tty and count:
                self.stdout.write(self.progress(0, count, 0), ending="")
                self.stdout.flush()

        seed = Seeding.MAIN if options["seed"] else Seeding.NONE
        if no_wait_check(options):  # a broker is configured: one task per tenant on the workers
            from tenants.fanout import migrate_fan_out

            sent, results = migrate_fan_out(
                seed=seed, failed_only=options["failed"], wait=not options["no_wait"], on_start=start, on_result=report
            )
            if options["no_wait"]:
                self.stdout.write(sent.follow_hint("results land in `manage.py migration_report`."))
                return
        else:
            results = tenants_migrate_all(
                workers=options["workers"],
                on_start=start,
                on_result=report,
                seed=seed,
                failed_only=options["failed"],
            )
        if tty:
            self.stdout.write("\r\033[K", ending="")
        bad = [r.tenant for r in results if not r.ok]
        if not results:
            self.stdout.write("No tenant to migrate." if not options["failed"] else "No failed tenant to rerun.")
            return
        self.stdout.write(f"{len(results) - len(bad)} of {len(results)} tenants migrated.")
        if bad:
            raise CommandError(
                f"{len(bad)} tenant(s) failed: {', '.join(bad)} (rerun them with: manage.py migrate_tenants --failed)"
            )

    @staticmethod
    def progress(done: int, total: int, failed: int) -> str:
        width = 30
        filled = width * done // total if total else width
        return f"[{'#' * filled}{'.' * (width - filled)}] {done}/{total} tenants" + (
            f", {failed} failed" if failed else ""
        )
