"""The daily entry point: backups and scheduled jobs of the master and of every tenant."""

from __future__ import annotations

from datetime import datetime, time
from typing import Any

from django.core.management.base import CommandError, CommandParser
from django.utils import timezone

from m3saas.commands import TENANT_METAVAR, PlatformCommand, tenant_get
from tenants.cron import crons_run
from tenants.workers import fan_out_errors, no_wait_argument_add, no_wait_check, wait_timeout


def _moment(value: str) -> datetime:
    """`YYYY-MM-DD` or an ISO date-time; naive values are in the current time zone."""
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise CommandError(f"--now {value!r}: use YYYY-MM-DD or YYYY-MM-DDTHH:MM:SS") from None
    if len(value) == 10:
        moment = datetime.combine(moment.date(), time(12, 0))
    return moment if timezone.is_aware(moment) else timezone.make_aware(moment)


class Command(PlatformCommand):
    audited = True
    help = (
        "Run once a day (the system's cron): the master's backup, then for each tenant its "
        "backup and the due jobs of its modules. A job runs at most once per due day."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--now", metavar="DATE", help="Run as if it were DATE (YYYY-MM-DD or ISO date-time).")
        parser.add_argument("--tenant", metavar=TENANT_METAVAR, action="append", help="Only this tenant (repeatable).")
        no_wait_argument_add(parser)

    def handle(self, *args: Any, **options: Any) -> None:
        now = _moment(options["now"]) if options["now"] else None
        # Every named tenant is checked before anything runs (the master's backup included).
        names = [tenant_get(ref).name for ref in options["tenant"]] if options["tenant"] else None
        if no_wait_check(options):  # a broker is configured: one task per tenant on the workers
            from tenants.fanout import crons_fan_out

            with fan_out_errors():
                sent, report = crons_fan_out(
                    now=now, tenant_names=names, wait=not options["no_wait"], wait_timeout=wait_timeout(options)
                )
            if options["no_wait"]:
                self.stdout.write(sent.follow_hint("each job's last run is kept in its tenant's database."))
                return
        else:
            report = crons_run(now=now, tenant_names=names)
        verbose = options["verbosity"] >= 2
        for outcome in report.outcomes:
            if outcome.status == "not_due" and not verbose:
                continue
            job = f"{outcome.module or 'platform'}:{outcome.job}"
            line = f"{outcome.database}: {job} {outcome.status}"
            if outcome.status == "failed":
                self.stderr.write(f"{line}: {outcome.error}")
            else:
                self.stdout.write(line)
        for database, error in report.failed_databases.items():
            self.stderr.write(f"{database}: FAILED: {error}")
        ran = sum(1 for o in report.outcomes if o.ran)
        failed = sum(1 for o in report.outcomes if o.status == "failed") + len(report.failed_databases)
        self.stdout.write(f"{ran} job(s) ran, {failed} failure(s).")
        if not report.ok:
            raise CommandError("Some scheduled jobs failed; see the log above.")
