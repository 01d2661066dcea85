"""List the backups that exist, per database."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from tenants.backup_files import Backup, backup_dir, backup_list, backups_list_all


class Command(BaseCommand):
    help = "List the backups under BACKUP_DIR, per database (or of one database with --database)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--database", metavar="NAME", help="Only this database (a tenant name or the master's).")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["database"]:
            found = {options["database"]: backup_list(database=options["database"])}
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


def _line(backup: Backup) -> str:
    return f"{backup.day.isoformat()}  series {backup.series}  {backup.size:>12,d} bytes  {backup.path}"
