"""Restore a tenant database from one of its backups (newest, newest of a day, or exact)."""

from __future__ import annotations

from datetime import date
from typing import Any

from django.core.management.base import CommandError, CommandParser

from m3saas.commands import TENANT_METAVAR, PlatformCommand, tenant_get
from m3saas.exceptions import ApplicationError
from tenants.backup_files import backup_select
from tenants.backups import backup_restore, backup_target_tenant
from tenants.models import TenantMigrationRun
from tenants.services import tenant_migrate


def _date(value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise CommandError(f"--date {value!r}: use YYYY-MM-DD") from None


class Command(PlatformCommand):
    audited = True
    help = (
        "Replace a tenant's data with a backup: the newest, the newest of --date YYYY-MM-DD, "
        "or exactly --date YYYY-MM-DD --series HHMMSS, then migrate it to its modules. "
        "Other tenants are not touched; a failed restore leaves the tenant's data as it was."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--tenant", metavar=TENANT_METAVAR, required=True, help="The tenant to restore.")
        parser.add_argument("--date", metavar="YYYY-MM-DD", help="Newest backup of that day.")
        parser.add_argument("--series", metavar="HHMMSS", help="With --date: that exact backup.")

    def handle(self, *args: Any, **options: Any) -> None:
        day = _date(options["date"]) if options["date"] else None
        target = backup_target_tenant(tenant=tenant_get(options["tenant"]))
        try:
            backup = backup_select(database=target.database, day=day, series=options["series"])
        except ApplicationError as exc:
            raise CommandError(exc.message) from exc
        self.confirm(
            f"This replaces ALL data of tenant '{target.database}' with {backup.path.name}.",
            interactive=options["interactive"],
        )
        try:
            backup_restore(target=target, backup=backup)
        except ApplicationError as exc:
            raise CommandError(exc.message) from exc
        self.stdout.write(f"{target.database}: restored from {backup.path}")
        # The backup may be older than the tenant's modules: migrate it now (it is marked pending).
        assert target.tenant is not None
        result = tenant_migrate(tenant=target.tenant, trigger=TenantMigrationRun.Trigger.COMMAND)
        if not result.ok:
            raise CommandError(
                f"{target.database}: restored, but migrating it to its modules failed: {result.error}. "
                "Fix the cause, then run: manage.py migrate_tenants --failed"
            )
        applied = ", ".join(result.applied) or "nothing to apply"
        self.stdout.write(f"{target.database}: migrated ({applied})")
