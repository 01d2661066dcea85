"""Move one tenant, or every subscriber, to a new major version of a module."""

from __future__ import annotations

import re
from typing import Any

from django.core.management.base import CommandError, CommandParser

from m3saas.commands import PlatformCommand, tenant_get
from tenants.upgrade import UpgradeResult, subscription_upgrade_safe, subscriptions_upgrade_all

_MAJOR_RE = re.compile(r"^v?([1-9][0-9]*)$")


class Command(PlatformCommand):
    audited = True
    help = (
        "Move a tenant's subscription to a new major version of a module: migrate the new "
        "version's tables, run its data step (modules/<name>/v<N>/upgrade.py), then switch. "
        "Usage: upgrade_subscription <tenant> <module> <to_version> | --all-tenants <module> <to_version>."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("targets", nargs="+", metavar="[tenant] module to_version")
        parser.add_argument(
            "--drop-old",
            action="store_true",
            help="Afterwards, back the tenant database up (when backups exist) and drop the old version's tables.",
        )
        parser.add_argument("--all-tenants", action="store_true", help="Move every subscriber, one at a time.")

    def handle(self, *args: Any, **options: Any) -> None:
        targets: list[str] = options["targets"]
        expected = 2 if options["all_tenants"] else 3
        if len(targets) != expected:
            raise CommandError(
                "Give <tenant> <module> <to_version>, or --all-tenants <module> <to_version> "
                f"(got {' '.join(targets)})."
            )
        module, version_text = targets[-2], targets[-1]
        match = _MAJOR_RE.match(version_text)
        if match is None:
            raise CommandError(f"{version_text!r} is not a major version: give a number such as 2.")
        to_version = int(match.group(1))
        tenant = None if options["all_tenants"] else tenant_get(targets[0])
        if options["drop_old"]:
            who = "every subscriber" if tenant is None else f"tenant '{tenant.name}'"
            self.confirm(
                f"After moving {who} to {module} v{to_version}, the old version's tables are DROPPED "
                "(with a backup first where backups exist).",
                interactive=options["interactive"],
            )

        def report(result: UpgradeResult) -> None:
            (self.stdout if result.ok else self.stderr).write(result.describe())

        if tenant is None:
            results = subscriptions_upgrade_all(
                module=module, to_version=to_version, drop_old=options["drop_old"], on_result=report
            )
        else:
            result = subscription_upgrade_safe(
                tenant=tenant, module=module, to_version=to_version, drop_old=options["drop_old"]
            )
            report(result)
            results = [result]
        failed = [r.tenant for r in results if not r.ok]
        if options["all_tenants"]:
            self.stdout.write(f"{len(results) - len(failed)} of {len(results)} tenant(s) on {module} v{to_version}.")
        if failed:
            raise CommandError(f"{len(failed)} tenant(s) failed: {', '.join(failed)}")
