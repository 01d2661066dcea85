"""`migrate`, tenant-aware: `--database=<tenant>` applies exactly that tenant's module apps."""

from __future__ import annotations

from typing import Any

from django.core.management.base import CommandError
from django.core.management.commands.migrate import Command as DjangoMigrateCommand

from m3saas.tenancy.connections import is_tenant_alias
from tenants.selectors import tenant_info_get_by_alias
from tenants.services import tenant_provision


class Command(DjangoMigrateCommand):
    help = (
        "Migrate the master database, or with --database=<tenant> one tenant database with the "
        "module versions it subscribes to (dependencies included)."
    )

    def get_check_kwargs(self, options: dict[str, Any]) -> Any:
        kwargs = super().get_check_kwargs(options)
        if is_tenant_alias(options["database"]):
            # The tenant database may not exist yet (this command creates it); check the master's.
            kwargs["databases"] = ["default"]
        return kwargs

    def handle(self, *args: Any, **options: Any) -> None:
        database = options["database"]
        if not is_tenant_alias(database):
            super().handle(*args, **options)
            return
        if options.get("app_label") or options.get("migration_name"):
            raise CommandError(
                "A tenant database is migrated as a whole: drop the app label "
                f"(manage.py migrate --database={database})."
            )
        tenant = tenant_info_get_by_alias(database)
        applied = tenant_provision(tenant=tenant)
        if options["verbosity"] >= 1:
            modules = ", ".join(f"{n} v{m}" for n, m in tenant.modules) or "none"
            self.stdout.write(f"Tenant {tenant.name} (modules: {modules})")
            for name in applied:
                self.stdout.write(f"  Applied {name}")
            if not applied:
                self.stdout.write("  No migrations to apply.")
