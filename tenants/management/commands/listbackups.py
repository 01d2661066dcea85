"""List the backups that exist, per database."""

from __future__ import annotations

from typing import Any

from django.core.management.base import CommandError, CommandParser

from m3saas.commands import PlatformCommand, tenant_get
from tenants.backup_files import Backup, backup_dir, backup_list, backups_list_all
from tenants.backups import backup_target_master


class Command(PlatformCommand):
    help = (
        "List the backups under BACKUP_DIR, per database (or of one database with --database: the master's "
        "name, a tenant's id or name, or the name of a deleted tenant that left backups)."
    )
    quiet_drops_output = False

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--database", metavar="ID|NAME", help="Only this database (a tenant id or name, or the master's)."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["database"]:
            database = self.database_name(options["database"])
            found = {database: backup_list(database=database)}
        else:
            found = backups_list_all()
        if not any(found.values()):
            self.stdout.write(f"No backups in {backup_dir()}.")
            return
        for database, backups in found.items():
            if not backups:
                continue
            self.stdout.write(f"{database} ({len(backups)}):")
            for backup in reversed(backups):
                self.stdout.write(f"  {_line(backup)}")

    @staticmethod
    def database_name(reference: str) -> str:
        """The master's backup name, a tenant's name, or a folder of backups; an unknown name is an error."""
        if reference == backup_target_master().database:
            return reference
        try:
            return tenant_get(reference).name
        except CommandError:
            if reference in backups_list_all():
                return reference  # a tenant deleted since; its backups stay listable
            raise CommandError(
                f"No tenant with id or name {reference!r}, and it is not the master database "
                f"({backup_target_master().database}) nor a folder in {backup_dir()}."
            ) from None


def _line(backup: Backup) -> str:
    return f"{backup.day.isoformat()}  series {backup.series}  {backup.size:>12,d} bytes  {backup.path}"
