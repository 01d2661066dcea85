"""Write one `<tenant>/#`-scoped broker user per tenant into the file-RBAC `credentials.xml`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import CommandError, CommandParser
from django.db import DatabaseError

from m3saas.commands import PlatformCommand
from m3saas.conf import BASE_DIR
from m3saas.mqtt.credentials import (
    DEFAULT_HASH_ITERATIONS,
    MQTTPasswordSource,
    mqtt_credentials_write,
    mqtt_tenant_password,
)
from tenants.selectors import tenant_info_list

DEFAULT_FILE_SHOWN = "hive-mq/extensions/hivemq-file-rbac-extension/credentials.xml"
DEFAULT_FILE = BASE_DIR / DEFAULT_FILE_SHOWN


class Command(PlatformCommand):
    help = (
        "Add, update or remove one broker user per tenant (username = tenant name, scoped to "
        "<tenant name>/#) in credentials.xml, keeping the users and roles it did not create."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--file", type=Path, default=DEFAULT_FILE, help=f"The file to update (default {DEFAULT_FILE})."
        )
        parser.add_argument(
            "--password-from",
            choices=[s.value for s in MQTTPasswordSource],
            default=MQTTPasswordSource.DERIVED.value,
            help="derived: HMAC-SHA256 of the tenant password keyed with dbSalt (default); "
            "tenant: the tenant password itself.",
        )
        parser.add_argument("--iterations", type=int, default=DEFAULT_HASH_ITERATIONS, help="PBKDF2 iterations.")
        parser.add_argument(
            "--show-passwords",
            action="store_true",
            help="Also print each tenant's clear-text broker password, to hand to the tenant.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            tenants = tenant_info_list()
        except DatabaseError as exc:
            raise CommandError(f"cannot read the tenants ({exc}): is the master database migrated?") from None
        source = MQTTPasswordSource(options["password_from"])
        try:
            change = mqtt_credentials_write(
                path=options["file"], tenants=tenants, password_source=source, iterations=options["iterations"]
            )
        except (OSError, ValueError, SyntaxError) as exc:
            raise CommandError(f"{options['file']}: {exc}") from None
        for label, names in (
            ("added", change.added),
            ("updated", change.updated),
            ("removed", change.removed),
            ("unchanged", change.unchanged),
        ):
            if names:
                self.stdout.write(f"{label}: {', '.join(names)}")
        for name in change.skipped:
            self.stderr.write(
                f"skipped {name}: a user of that name exists in the file and was not made by this command"
            )
        self.stdout.write(f"{options['file']}: {'written' if change.written else 'already up to date'}.")
        if options["show_passwords"]:
            for tenant in tenants:
                self.stdout.write(f"{tenant.name}\t{mqtt_tenant_password(tenant=tenant, source=source)}")
