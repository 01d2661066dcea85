"""Whether per-tenant work goes to Celery workers, and the commands' `--no-wait` (no Celery import here).

With CELERY_BROKER_URL set, `migrate_tenants`, `backup --all-tenants` and `runcrons` hand their
tenants to `tenants.fanout`; without it they run in-process as they always did.
"""

from __future__ import annotations

from argparse import ArgumentTypeError
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from django.conf import settings
from django.core.management.base import CommandError, CommandParser


def celery_enabled() -> bool:
    """Whether a broker is configured: per-tenant work then goes to the workers."""
    return bool(settings.CELERY_BROKER_URL)


def _seconds(value: str) -> float:
    try:
        seconds = float(value)
    except ValueError:
        seconds = -1.0
    if not 0 < seconds <= 7 * 24 * 3600:
        raise ArgumentTypeError(f"seconds, more than 0 and at most a week, not {value!r}")
    return seconds


def no_wait_argument_add(parser: CommandParser) -> None:
    parser.add_argument(
        "--no-wait",
        action="store_true",
        help="With workers (CELERY_BROKER_URL): send one task per tenant and return at once.",
    )
    parser.add_argument(
        "--wait-timeout",
        type=_seconds,
        default=None,
        metavar="SECONDS",
        help="With workers: give up waiting when no task has finished for this long "
        "(default: FANOUT_WAIT_TIMEOUT, 900 s); the tasks stay queued.",
    )


def wait_timeout(options: dict[str, Any]) -> float:
    """The command's `--wait-timeout`, else the FANOUT_WAIT_TIMEOUT setting."""
    value = options.get("wait_timeout")
    return float(value) if value is not None else float(settings.FANOUT_WAIT_TIMEOUT)


def no_wait_check(options: dict[str, Any]) -> bool:
    """Whether this run fans out to the workers; `--no-wait` without a broker is a one-line error."""
    if celery_enabled():
        return True
    if options.get("no_wait"):
        raise CommandError("--no-wait needs Celery workers: set CELERY_BROKER_URL (see README, 'Workers (Celery)').")
    return False


@contextmanager
def fan_out_errors() -> Iterator[None]:
    """A fan-out's wait that timed out is the command's one-line error (exit 1)."""
    from tenants.fanout import FanOutTimeoutError

    try:
        yield
    except FanOutTimeoutError as exc:
        raise CommandError(exc.message) from None
