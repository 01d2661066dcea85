"""Apply main seeds (or temporary seeds, or deseed) to the master, one tenant, or every tenant."""

from __future__ import annotations

from typing import Any

from django.core.management.base import CommandError, CommandParser
from django.db import DEFAULT_DB_ALIAS

from m3saas.commands import PlatformCommand, tenant_get
from m3saas.exceptions import ApplicationError
from m3saas.seeding import SeedAction, SeedReport, seeds_run
from m3saas.tenancy.each import TenantOutcome
from tenants.models import TenantMigrationRun
from tenants.seeding import seeds_run_all_tenants
from tenants.servers import server_preferred, servers_sync
from tenants.services import tenants_auto_migrate_pending


def describe(action: SeedAction, report: SeedReport) -> str:
    if action == SeedAction.DESEED:
        return f"temporary seeds removed: {report.deleted} row(s) deleted"
    what = "main seeds" if action == SeedAction.MAIN else "temporary seeds"
    text = f"{what}: {report.inserted} inserted"
    if action == SeedAction.MAIN:
        text += f", {report.updated} updated"
        if report.skipped:
            text += f", {report.skipped} left alone (a row with that id was not seeded)"
    return f"{text} ({len(report.files)} file(s))"


class Command(PlatformCommand):
    audited = True
    help = (
        "Insert missing main seeds and rewrite forced ones (--force: rewrite all of them), or insert "
        "temporary seeds (--temporary), or remove them (--deseed), in the master database (default), "
        "one tenant database (--database=<tenant>) or every tenant database (--all-tenants)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        mode = parser.add_mutually_exclusive_group()
        mode.add_argument(
            "--force", action="store_true", help="Rewrite every main seed to its seeded values (in place)."
        )
        mode.add_argument("--temporary", action="store_true", help="Insert the temporary seeds (again).")
        mode.add_argument("--deseed", action="store_true", help="Delete the rows inserted as temporary seeds.")
        target = parser.add_mutually_exclusive_group()
        target.add_argument(
            "--database",
            default=DEFAULT_DB_ALIAS,
            metavar="default|ID|NAME",
            help="'default' (the master, the default) or a tenant's id or name.",
        )
        target.add_argument("--all-tenants", action="store_true", help="Every tenant database, one after another.")
        parser.add_argument(
            "--server",
            metavar="NAME",
            help="Master seeds: tenants they add without a 'server' go to this database server "
            "(default: the open server with the most free capacity).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        action = SeedAction.MAIN
        if options["temporary"]:
            action = SeedAction.TEMPORARY
        elif options["deseed"]:
            action = SeedAction.DESEED
        force = True if options["force"] else None
        if options["all_tenants"]:
            self.handle_all_tenants(action, force)
            return
        database = options["database"]
        if database != DEFAULT_DB_ALIAS:
            try:
                database = tenant_get(database).name
            except CommandError as exc:
                raise CommandError(f"{exc} Give 'default' for the master database.") from None
        if options["server"] and database != DEFAULT_DB_ALIAS:
            raise CommandError("--server places the tenants the master seeds add; it needs --database=default.")
        try:
            if database == DEFAULT_DB_ALIAS:
                servers_sync()  # a seed's `server` must name an existing row
            with server_preferred(options["server"]):
                report = seeds_run(alias=database, action=action, force=force)
        except ApplicationError as exc:
            raise CommandError(f"{database}: {exc.message}") from exc
        self.stdout.write(f"{database}: {describe(action, report)}")
        if database == DEFAULT_DB_ALIAS and action != SeedAction.DESEED:
            self.after_master_seeding(report)

    def after_master_seeding(self, report: SeedReport) -> None:
        """Runs after seeds were committed to the master database (tenants may have been added).

        The place for automatic migration (AUTO_MIGRATION) of tenants the seeds registered.
        """
        results = tenants_auto_migrate_pending(trigger=TenantMigrationRun.Trigger.COMMAND)
        for result in results:
            if result.ok:
                self.stdout.write(f"{result.tenant}: database ready ({len(result.applied)} migration(s) applied)")
            else:
                self.stderr.write(f"{result.tenant}: database not ready: {result.error}")
        failed = [r.tenant for r in results if not r.ok]
        if failed:
            raise CommandError(
                f"{len(failed)} tenant database(s) could not be prepared: {', '.join(failed)} "
                "(rerun them with: manage.py migrate_tenants --failed --seed)"
            )

    def handle_all_tenants(self, action: SeedAction, force: bool | None) -> None:
        def show(outcome: TenantOutcome[SeedReport]) -> None:
            if outcome.value is not None:
                self.stdout.write(f"{outcome.tenant.name}: {describe(action, outcome.value)}")
            else:
                self.stderr.write(f"{outcome.tenant.name}: FAILED: {outcome.error}")

        results = seeds_run_all_tenants(action=action, force=force, on_result=show)
        failed = [r.tenant.name for r in results if not r.ok]
        self.stdout.write(f"{len(results) - len(failed)} of {len(results)} tenant(s) seeded.")
        if failed:
            raise CommandError(f"{len(failed)} tenant(s) failed: {', '.join(failed)}")
