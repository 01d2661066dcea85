"""Migrate every tenant database in parallel; record and report each tenant's result."""

from __future__ import annotations

from typing import Any

from django.core.management.base import CommandError, CommandParser

from m3saas.commands import PlatformCommand
from m3saas.tenancy.each import stop_on_signals
from tenants.services import Seeding, TenantMigrationResult, tenants_migrate_all
from tenants.workers import fan_out_errors, no_wait_argument_add, no_wait_check, wait_timeout

# The exit code of a run stopped by SIGTERM or Ctrl-C before every tenant was run (1: a tenant failed).
EXIT_STOPPED = 3


class Command(PlatformCommand):
    audited = True
    help = (
        "Create missing tenant databases and apply pending module migrations to every tenant (or, with "
        "--failed, to those whose last run failed or never finished). Each result is recorded in the master "
        "database; the command carries on past a failing tenant and exits non-zero if any failed. A ready tenant whose "
        "migration fingerprint in the master matches the code is skipped without opening its database (--verify "
        f"opens them all). SIGTERM or Ctrl-C stops the run: tenants in flight finish, the others are not run "
        f"(recorded `not_run`; exit code {EXIT_STOPPED})."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--workers", type=int, default=None, help="Tenants migrated at once.")
        parser.add_argument(
            "--failed", action="store_true", help="Only the tenants whose last run failed or never finished."
        )
        parser.add_argument("--seed", action="store_true", help="Also apply each tenant's main seeds.")
        parser.add_argument(
            "--verify",
            action="store_true",
            help="Open every tenant database, also those whose fingerprint says nothing is pending "
            "(catches a database changed behind the platform's back).",
        )
        no_wait_argument_add(parser)

    def handle(self, *args: Any, **options: Any) -> None:
        done = failed = 0
        tty = self.stdout.isatty()
        total: list[int] = []

        def report(result: TenantMigrationResult) -> None:
            nonlocal done, failed
            done += 1
            failed += 0 if result.ok or result.not_run else 1
            count = f"[{done}/{total[0]}]" if total else f"[{done}]"
            if tty:
                self.stdout.write("\r\033[K", ending="")
            if result.not_run:
                self.stderr.write(f"{count} {result.tenant}: NOT RUN (stopped)")
            elif result.ok:
                what = f"{len(result.applied)} applied" if result.applied else "up to date"
                what += " (unchanged, not opened)" if result.unchanged else ""
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

            with fan_out_errors():
                sent, results = migrate_fan_out(
                    seed=seed,
                    failed_only=options["failed"],
                    wait=not options["no_wait"],
                    wait_timeout=wait_timeout(options),
                    on_start=start,
                    on_result=report,
                )
            if options["no_wait"]:
                self.stdout.write(sent.follow_hint("results land in `manage.py migration_report`."))
                return
        else:
            with stop_on_signals() as stop:
                results = tenants_migrate_all(
                    workers=options["workers"],
                    on_start=start,
                    on_result=report,
                    seed=seed,
                    failed_only=options["failed"],
                    verify=options["verify"],
                    stop=stop,
                )
        if tty:
            self.stdout.write("\r\033[K", ending="")
        bad = [r.tenant for r in results if not r.ok and not r.not_run]
        not_run = sum(1 for r in results if r.not_run)
        if not results:
            self.stdout.write("No tenant to migrate." if not options["failed"] else "No failed tenant to rerun.")
            return
        ok = len(results) - len(bad) - not_run
        unchanged = sum(1 for r in results if r.unchanged)
        skipped = f" ({unchanged} unchanged, not opened)" if unchanged else ""
        self.stdout.write(f"{ok} of {len(results)} tenants migrated{skipped}.")
        if not_run:
            failures = f"; {len(bad)} failed: {', '.join(bad)}" if bad else ""
            raise CommandError(
                f"Stopped: {not_run} tenant(s) not run{failures} (rerun them with: manage.py migrate_tenants --failed)",
                returncode=EXIT_STOPPED,
            )
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
