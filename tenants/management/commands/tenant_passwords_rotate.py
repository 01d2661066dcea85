"""Re-encrypt the stored tenant passwords with the current key (the first of tenantPasswordKeys)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from m3saas.audit.services import Source, audit_record, system_user
from m3saas.passwords import KEYS_SETTING, PasswordKeyError
from tenants.passwords import tenant_passwords_rotate


class Command(BaseCommand):
    help = (
        f"Re-encrypt every tenant's stored password with the first key of {KEYS_SETTING}; "
        "afterwards the other keys can leave the config."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            count = tenant_passwords_rotate()
        except PasswordKeyError as exc:
            raise CommandError(f"{exc.message} Nothing was changed.") from None
        audit_record(
            actor=system_user(),
            source=Source.COMMAND,
            action="command.tenant_passwords_rotate",
            detail={"count": count},
        )
        if options["verbosity"] >= 1:
            self.stdout.write(f"Re-encrypted {count} tenant password(s) with the first key of {KEYS_SETTING}.")
