"""The base of the project's management commands: tenant arguments, quiet `-v 0`, `--noinput`, safe prompts.

Every command that takes a tenant reads it with `tenant_get` (an id or a name, an unknown one
is an error with exit 1); `-v 0` leaves only errors and warnings; a question asked with no one
to answer (a closed or empty stdin, as in a script) is one line telling how to go on.
"""

from __future__ import annotations

import io
import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser, OutputWrapper

from m3saas.audit.services import audit_record_command
from m3saas.exceptions import ApplicationError, TenantNotFoundError
from m3saas.identifiers import is_digits
from m3saas.tenancy.directory import tenant_directory
from m3saas.tenancy.info import TenantInfo

TENANT_METAVAR = "ID|NAME"
NO_ONE_TO_ANSWER = (
    "This needs a confirmation and there is no one to answer (stdin is closed): "
    "rerun with --noinput to go ahead without asking."
)


@contextmanager
def _logs_at_least(level: int) -> Iterator[None]:
    root = logging.getLogger()
    previous = root.level
    root.setLevel(max(level, previous))
    try:
        yield
    finally:
        root.setLevel(previous)


def tenant_get(reference: str) -> TenantInfo:
    """The tenant a command line names by id (`7`) or by name (`acme`); `CommandError` when none.

    Tenant names start with a letter, so a reference made of digits is always an id.
    """
    directory = tenant_directory()
    text = reference.strip()
    try:
        return directory.get(tenant_id=int(text)) if is_digits(text) else directory.get_by_alias(text)
    except TenantNotFoundError:
        raise CommandError(f"No tenant with id or name {reference!r}.") from None
    except ApplicationError as exc:  # e.g. subscriptions that do not resolve
        raise CommandError(f"Tenant {reference!r}: {exc.message}") from None


# Options every command has; an audit entry keeps only the command's own.
_COMMON_OPTIONS = {
    "verbosity",
    "settings",
    "pythonpath",
    "traceback",
    "no_color",
    "force_color",
    "skip_checks",
    "stdout",
    "stderr",
}


def _audited_options(args: tuple[Any, ...], options: dict[str, Any]) -> dict[str, Any]:
    kept = {name: value for name, value in options.items() if name not in _COMMON_OPTIONS}
    return {**kept, "args": [str(a) for a in args]} if args else kept


class PlatformCommand(BaseCommand):
    """A command of the platform: `-v 0` is quiet, and `confirm` never dies of an `EOFError`."""

    # False where what the command prints is what was asked for (a listing, a hash): `-v 0` keeps it.
    quiet_drops_output = True

    # Set on commands that write: each run is then recorded in the audit log (the system user, the options).
    audited = False

    def execute(self, *args: Any, **options: Any) -> Any:
        if not self.audited:
            return self._execute(*args, **options)
        ok = False
        try:
            result = self._execute(*args, **options)
            ok = True
            return result
        finally:
            audit_record_command(command=self._audit_name(), options=_audited_options(args, options), ok=ok)

    def _audit_name(self) -> str:
        return type(self).__module__.rpartition(".")[2]

    def _execute(self, *args: Any, **options: Any) -> Any:
        # Questions are asked where the caller sees them, even when `-v 0` drops the report.
        self.prompt_out = OutputWrapper(options.get("stdout") or sys.stdout)
        if options.get("verbosity", 1) >= 1:
            return super().execute(*args, **options)
        # Quiet: what a command reports is dropped, errors and warnings (stderr, logs) stay.
        if self.quiet_drops_output:
            options = {**options, "stdout": io.StringIO()}
        with _logs_at_least(logging.WARNING):
            return super().execute(*args, **options)

    def create_parser(self, prog_name: str, subcommand: str, **kwargs: Any) -> CommandParser:
        parser = super().create_parser(prog_name, subcommand, **kwargs)
        # On every command, so a script may pass it to any; only commands that ask read it.
        parser.add_argument(
            "--noinput",
            "--no-input",
            action="store_false",
            dest="interactive",
            help="Never ask for confirmation (for scripts): go ahead.",
        )
        return parser

    def confirm(self, question: str, *, interactive: bool) -> None:
        """Ask `question` on stdout, read the answer from stdin; anything but `yes` cancels.

        Without --noinput and no one to answer (no stdin, or at its end): an error, not an `EOFError`.
        """
        if not interactive:
            return
        if sys.stdin is None or sys.stdin.closed:
            raise CommandError(NO_ONE_TO_ANSWER)
        self.prompt_out.write(f"{question}\nType 'yes' to continue, or 'no' to cancel: ", ending="")
        self.prompt_out.flush()
        try:
            answer = sys.stdin.readline()
        except OSError:  # a stdin that cannot be read (pytest's, a closed descriptor)
            answer = ""
        if not answer:
            self.prompt_out.write("")  # end the prompt's line
            raise CommandError(NO_ONE_TO_ANSWER)
        if answer.strip().lower() != "yes":
            raise CommandError("Cancelled: nothing was changed.")
