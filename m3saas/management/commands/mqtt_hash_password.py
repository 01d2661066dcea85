"""Print a password hash for the HiveMQ file-RBAC extension's `credentials.xml`, no broker needed."""

from __future__ import annotations

from typing import Any

from django.core.management.base import CommandError, CommandParser

from m3saas.commands import PlatformCommand
from m3saas.mqtt.credentials import DEFAULT_HASH_ITERATIONS, mqtt_password_hash


class Command(PlatformCommand):
    help = (
        "Print base64(salt):iterations:base64(PBKDF2-HMAC-SHA512) of a password, the format of the "
        "HiveMQ file-RBAC extension's credentials.xml (password-type HASHED)."
    )
    quiet_drops_output = False
    # Hashing needs neither the database nor the URL configuration.
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("password", help="The clear-text password to hash.")
        parser.add_argument(
            "--iterations",
            type=int,
            default=DEFAULT_HASH_ITERATIONS,
            help=f"PBKDF2 iterations (default {DEFAULT_HASH_ITERATIONS}).",
        )
        parser.add_argument("--salt", default=None, help="The salt, base64-encoded (default: 32 random characters).")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            encoded = mqtt_password_hash(
                password=options["password"], salt=options["salt"], iterations=options["iterations"]
            )
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(encoded)
