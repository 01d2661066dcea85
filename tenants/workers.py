"""Whether per-tenant work goes to Celery workers, and the commands' `--no-wait` (no Celery import here).

With CELERY_BROKER_URL set, `migrate_tenants`, `backup --all-tenants` and `runcrons` hand their
tenants to `tenants.fanout`; without it they run in-process as they always did.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import CommandError, CommandParser


def celery_enabled() -> bool:
    """Whether a broker is configured: per-tenant work then goes to the workers."""
    return bool(settings.CELERY_BROKER_URL)


def no_wait_argument_add(parser: CommandParser) -> None:
    parser.add_argument(
        "--no-wait",
        action="store_true",
        help="With workers (CELERY_BROKER_URL): send one task per tenant and return at once.",
    )


def no_wait_check(options: dict[str, Any]) -> bool:
    """Whether this run fans out to the workers; `--no-wait` without a broker is a one-line error."""
    if celery_enabled():
        return True
    if options.get("no_wait"):
        raise CommandError("--no-wait needs Celery workers: set CELERY_BROKER_URL (see README, 'Workers (Celery)').")
    return False
