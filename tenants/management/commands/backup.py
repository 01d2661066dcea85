"""Back up the master database, one tenant's, or every tenant's; then apply retention."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from m3saas.exceptions import ApplicationError
from tenants.backups import (
    BackupResult,
    BackupTarget,
    backup_create,
    backup_target_get,
    backup_target_master,
    backup_targets_all_tenants,
)


class Command(BaseCommand):
    help = (
        "Back up the master database (default), one tenant (--tenant NAME) or every tenant "
        "(--all-tenants) into BACKUP_DIR/<database>/<database>-YYYY-MM-DD-HHMMSS.<ext>, then "
        "remove the oldest backups beyond the per-day and overall limits."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        which = parser.add_mutually_exclusive_group()
        which.add_argument("--tenant", metavar="NAME", help="Back up this tenant's database.")
        which.add_argument("--all-tenants", action="store_true", help="Back up every tenant's database.")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            if options["tenant"]:
                targets = [backup_target_get(tenant_name=options["tenant"])]
            elif options["all_tenants"]:
                targets = backup_targets_all_tenants()
            else:
                targets = [backup_target_master()]
        except ApplicationError as exc:
            raise CommandError(exc.message) from exc
        failed: list[str] = []
        for target in targets:
            try:
                result = backup_create(target=target)
            except ApplicationError as exc:
                self.stderr.write(f"{target.database}: FAILED: {exc.message}")
                failed.append(target.database)
                continue
            self._report(target, result)
        if failed:
            raise CommandError(f"{len(failed)} backup(s) failed: {', '.join(failed)}")

    def _report(self, target: BackupTarget, result: BackupResult) -> None:
        self.stdout.write(f"{target.database}: {result.backup.path}")
        for removed in result.removed:
            self.stdout.write(f"  removed {removed.path.name} (retention)")
