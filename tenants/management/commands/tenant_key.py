"""Make, list and revoke tenant API keys; `demo` prints the embedded default's demo key."""

from __future__ import annotations

import os
from datetime import datetime, time
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime

from m3saas.access import key_matches
from m3saas.audit.services import Source, audit_record, system_user
from m3saas.exceptions import ApplicationError
from tenants.api_keys import api_key_create, api_key_info_get, api_key_list, api_key_revoke, tenant_get_by_ref
from tenants.models import ApiKey, Tenant

DEMO_KEY_NAME = "demo"


def _expires(text: str) -> datetime:
    """`2027-01-31` (the start of that day, in TIME_ZONE) or an ISO date-time; never in the past."""
    try:  # both raise ValueError for a well-formed but impossible value (2027-02-30, 25:00)
        moment = parse_datetime(text)
        day = parse_date(text) if moment is None and len(text) == 10 else None
    except ValueError:
        moment = day = None
    if moment is None:
        if day is None:
            raise CommandError(f"--expires {text!r} is not a date (2027-01-31) or an ISO date-time.")
        moment = datetime.combine(day, time.min)
    if timezone.is_naive(moment):
        moment = timezone.make_aware(moment)
    if moment <= timezone.now():
        raise CommandError(f"--expires {text!r} is in the past.")
    return moment


def _describe(row: ApiKey) -> str:
    modules = row.modules or "all modules"
    access = "read-only" if row.read_only else "read-write"
    expires = f"expires {row.expires_at:%Y-%m-%d %H:%M %Z}" if row.expires_at else "never expires"
    return f"{modules}, {access}, {expires}"


def _audit(verb: str, row: ApiKey) -> None:
    audit_record(
        actor=system_user(),
        source=Source.COMMAND,
        action=f"apikey.{verb}",
        target=row,
        detail={"command": "tenant_key", "tenant": row.tenant_id, "name": row.name},
    )


class Command(BaseCommand):
    help = (
        "Tenant API keys: `create <tenant>` prints a new key (shown once, on the last line), "
        "`list <tenant>` lists them, `revoke <key id>` refuses a key from now on; <tenant> is an id or a name. "
        "`demo` prints the embedded default's demo key of tenant 1 (made once, then the same)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        actions = parser.add_subparsers(dest="action", required=True, metavar="create|list|revoke|demo")
        create = actions.add_parser("create", help="Make a key; prints it alone on the last line.")
        create.add_argument("tenant", help="The tenant's id or name.")
        create.add_argument("--name", default="", help="What the key is for.")
        create.add_argument("--modules", default="", help="Comma-separated modules it may call (default: all).")
        create.add_argument("--read-only", action="store_true", help="Only GET, HEAD and OPTIONS.")
        create.add_argument("--expires", help="It is refused from this date (2027-01-31) or ISO date-time on.")
        create.add_argument("--rate-limit", default="", help="Its own limit on top of the tenant's, e.g. 60/min.")
        listing = actions.add_parser("list", help="The tenant's keys (never their secrets).")
        listing.add_argument("tenant", help="The tenant's id or name.")
        revoke = actions.add_parser("revoke", help="Refuse the key from the next request on.")
        revoke.add_argument("key_id", help="The 8 characters after m3s_ (as `list` shows).")
        demo = actions.add_parser("demo", help="The embedded default's demo key (tenant 1).")
        demo.add_argument("tenant", nargs="?", default="1", help="The tenant's id or name (default 1).")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            getattr(self, f"_{options['action']}")(options)
        except ApplicationError as exc:
            raise CommandError(exc.message) from None

    def _create(self, options: dict[str, Any]) -> None:
        tenant = tenant_get_by_ref(options["tenant"])
        expires = _expires(options["expires"]) if options["expires"] else None
        row, key = api_key_create(
            tenant=tenant,
            name=options["name"],
            modules=options["modules"],
            read_only=options["read_only"],
            expires_at=expires,
            rate_limit=options["rate_limit"],
        )
        _audit("create", row)
        self.stdout.write(f"API key {row.id} of tenant {tenant}: {_describe(row)}.")
        self.stdout.write("Keep it now; it is shown only this once:")
        self.stdout.write(key)

    def _list(self, options: dict[str, Any]) -> None:
        tenant = tenant_get_by_ref(options["tenant"])
        rows = api_key_list(tenant=tenant)
        if not rows:
            self.stdout.write(f"Tenant {tenant} has no API keys.")
            return
        now = timezone.now()
        for row in rows:
            used = f"last used {row.last_used_at:%Y-%m-%d %H:%M}" if row.last_used_at else "never used"
            self.stdout.write(f"{row.id}  {row.status(now=now):<7}  {row.name or '-'}  {_describe(row)}, {used}")

    def _revoke(self, options: dict[str, Any]) -> None:
        row = api_key_revoke(key_id=options["key_id"])
        _audit("revoke", row)
        self.stdout.write(f"API key {row.id} of tenant {row.tenant} is revoked.")

    def _demo(self, options: dict[str, Any]) -> None:
        """Make the demo key once and keep it in VAR_DIR, so every `make run` prints the same one."""
        if not settings.M3SAAS_CONFIG.embedded:
            # `make run` with a config file: no demo tenant to speak of; nothing to do.
            self.stderr.write("No demo key outside the embedded default: use `manage.py tenant_key create <tenant>`.")
            return
        tenant = tenant_get_by_ref(options["tenant"])
        path = Path(settings.M3SAAS_CONFIG.var_dir) / f"demo-api-key-{tenant.pk}"
        key = self._demo_kept(path, tenant)
        if key is None:
            row, key = api_key_create(tenant=tenant, name=DEMO_KEY_NAME)
            _audit("create", row)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(key + "\n", encoding="utf-8")
            os.chmod(path, 0o600)
        self.stdout.write(f"Demo API key of tenant {tenant} (kept in {path}):")
        self.stdout.write(key)

    @staticmethod
    def _demo_kept(path: Path, tenant: Tenant) -> str | None:
        if not path.exists():
            return None
        key = path.read_text(encoding="utf-8").strip()
        parts = key.split("_")
        info = api_key_info_get(key_id=parts[1]) if len(parts) == 3 else None
        if info is None or info.tenant_id != tenant.pk or not info.usable(now=timezone.now()):
            return None
        return key if key_matches(key, info.digest) else None
