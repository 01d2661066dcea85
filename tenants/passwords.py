"""Key rotation of the tenant passwords stored in the master (see `m3saas.passwords`)."""

from __future__ import annotations

from django.db import DEFAULT_DB_ALIAS, transaction

from m3saas.passwords import PasswordKeyError, password_rotate
from tenants.models import Tenant


def tenant_passwords_rotate() -> int:
    """Re-encrypt every tenant's stored password with the first configured key; return how many.

    One transaction: when a password opens with no configured key, `PasswordKeyError` names its
    tenant and no row changes. The clear passwords stay the same, so no tenant goes pending.
    """
    with transaction.atomic(using=DEFAULT_DB_ALIAS):
        rows = list(Tenant.objects.select_for_update().order_by("id"))
        for row in rows:
            try:
                row.password = password_rotate(row.password)
            except PasswordKeyError as exc:
                raise PasswordKeyError(f"Tenant {row.name} (#{row.id}): {exc.message}") from None
            row.save(update_fields=["password"])
    return len(rows)
