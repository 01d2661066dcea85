"""Back up the master database, one tenant's, or every tenant's; then apply retention."""

from __future__ import annotations

from typing import Any

from django.core.management.base import CommandError, CommandParser

from m3saas.commands import TENANT_METAVAR, PlatformCommand, tenant_get
from m3saas.exceptions import ApplicationError
from m3saas.tenancy.each import TenantOutcome
from tenants.backups import (
    BackupResult,
    backup_create,
    backup_target_master,
    backup_target_tenant,
    backups_create_all_tenants,
)
from tenants.workers import fan_out_errors, no_wait_argument_add, no_wait_check, wait_timeout


class Command(PlatformCommand):
    audited = True
    help = (
        "Back up the master database (default), one tenant (--tenant ID|NAME) or every tenant "
        "(--all-tenants) into BACKUP_DIR/<database>/<database>-YYYY-MM-DD-HHMMSS.<ext>, then "
        "remove the oldest backups beyond the per-day and overall limits."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        which = parser.add_mutually_exclusive_group()
        which.add_argument("--tenant", metavar=TENANT_METAVAR, help="Back up this tenant's database.")
        which.add_argument("--all-tenants", action="store_true", help="Back up every tenant's database.")
        no_wait_argument_add(parser)

    def handle(self, *args: Any, **options: Any) -> None:
        if options["all_tenants"]:
            self.handle_all_tenants(options)
            return
        target = (
            backup_target_tenant(tenant=tenant_get(options["tenant"])) if options["tenant"] else backup_target_master()
        )
        try:
            result = backup_create(target=target)
        except ApplicationError as exc:
            self.stderr.write(f"{target.database}: FAILED: {exc.message}")
            raise CommandError(f"1 backup(s) failed: {target.database}") from exc
        self._report(target.database, result)

    def handle_all_tenants(self, options: dict[str, Any]) -> None:
        def show(outcome: TenantOutcome[BackupResult]) -> None:
            if outcome.value is not None:
                self._report(outcome.tenant.name, outcome.value)
            else:
                self.stderr.write(f"{outcome.tenant.name}: FAILED: {outcome.error}")

        if no_wait_check(options):  # a broker is configured: one task per tenant on the workers
            from tenants.fanout import backups_fan_out

            with fan_out_errors():
                sent, outcomes = backups_fan_out(
                    wait=not options["no_wait"], wait_timeout=wait_timeout(options), on_result=show
                )
            if options["no_wait"]:
                self.stdout.write(sent.follow_hint("the files appear in `manage.py listbackups`."))
                return
        else:
            outcomes = backups_create_all_tenants(on_result=show)
        failed = [o.tenant.name for o in outcomes if not o.ok]
        if failed:
            raise CommandError(f"{len(failed)} backup(s) failed: {', '.join(failed)}")

    def _report(self, database: str, result: BackupResult) -> None:
        self.stdout.write(f"{database}: {result.backup.path}")
        for removed in result.removed:
            self.stdout.write(f"  removed {removed.path.name} (retention)")
