"""Move a tenant's database to another server, or drain a server (`tenants.moves`).

Test hook (for the tests only, never in production): with `M3SAAS_TEST_MOVE_PAUSE=<step>` the
command prints `paused at <step>` when that step begins and waits for a line on stdin (a test
kills it there, or lets it go on).
"""

from __future__ import annotations

import os
import sys
from typing import Any

from django.core.management.base import CommandError, CommandParser

from m3saas.audit.services import Source, audit_record, system_user
from m3saas.commands import TENANT_METAVAR, PlatformCommand, tenant_get
from m3saas.exceptions import ApplicationError
from m3saas.tenancy.info import TenantInfo
from tenants.moves import (
    TenantMoveResult,
    server_drain,
    tenant_move,
    tenant_move_abort,
    tenant_move_source_drop,
)

PAUSE_ENV = "M3SAAS_TEST_MOVE_PAUSE"


class Command(PlatformCommand):
    audited = True
    help = (
        "Move a tenant's database to another server (--to SERVER): copy, verify, switch; its writes answer 503 "
        "meanwhile. The source database is kept until --drop-source (a backup first). --all-from SERVER drains "
        "a server; --abort ends a move whose process died before its switch."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("tenant", nargs="?", metavar=TENANT_METAVAR, help="The tenant to move.")
        parser.add_argument("--to", metavar="SERVER", help="The server to move it to (tenants.servers).")
        parser.add_argument(
            "--drop-source",
            action="store_true",
            help="Once moved (now, or by an earlier run), back up the source database, then drop it and its user.",
        )
        parser.add_argument("--abort", action="store_true", help="End a move left by a dead process; drop its copy.")
        parser.add_argument(
            "--all-from",
            metavar="SERVER",
            help="Drain SERVER: mark it draining, move each of its tenants to the open server with most room.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            if options["all_from"]:
                if options["tenant"] or options["to"] or options["abort"]:
                    raise CommandError("--all-from takes no tenant, --to nor --abort.")
                self._drain(options["all_from"], drop_source=options["drop_source"])
                return
            if not options["tenant"]:
                raise CommandError("Name the tenant to move (ID or name), or drain a server with --all-from SERVER.")
            tenant = tenant_get(options["tenant"])
            if options["abort"]:
                if options["to"]:
                    raise CommandError("--abort takes no --to.")
                move = tenant_move_abort(tenant=tenant)
                self._audit(
                    tenant.id,
                    "tenant.move_abort",
                    {"tenant": tenant.name, "source": move.source, "target": move.target},
                )
                self.stdout.write(f"{tenant.name}: move to {move.target} aborted; it stays on {move.source}, writing.")
                return
            if options["to"]:
                self._move(tenant, options["to"], drop_source=options["drop_source"])
            elif options["drop_source"]:
                move, backup = tenant_move_source_drop(tenant=tenant)
                detail = {"tenant": tenant.name, "source": move.source, "backup": backup.name}
                self._audit(tenant.id, "tenant.move_drop_source", detail)
                self.stdout.write(f"{tenant.name}: source database on {move.source} dropped (backup: {backup})")
            else:
                raise CommandError("Give --to SERVER (or --drop-source, or --abort).")
        except ApplicationError as exc:
            raise CommandError(exc.message) from exc

    def _move(self, tenant: TenantInfo, target: str, *, drop_source: bool) -> None:
        try:
            result = tenant_move(
                tenant=tenant, target=target, drop_source=drop_source, on_step=self._stepper(tenant.name)
            )
        except ApplicationError as exc:
            self._audit(
                tenant.id, "tenant.move", {"tenant": tenant.name, "target": target, "ok": False, "error": exc.message}
            )
            raise
        self._audit(result.tenant_id, "tenant.move", self._detail(result))
        self.stdout.write(self._line(result))

    def _drain(self, server: str, *, drop_source: bool) -> None:
        def started(count: int) -> None:
            self.stdout.write(f"{server}: draining, {count} tenant(s) to move")

        def step(name: str, step: str) -> None:
            self._stepper(name)(step)

        def done(result: TenantMoveResult) -> None:
            self._audit(result.tenant_id, "tenant.move", self._detail(result))
            if result.ok:
                self.stdout.write(self._line(result))
            else:
                self.stderr.write(f"{result.tenant}: FAILED: {result.error}")

        results = server_drain(server=server, drop_source=drop_source, on_start=started, on_step=step, on_result=done)
        failed = [r.tenant for r in results if not r.ok]
        self.stdout.write(f"{server}: {len(results) - len(failed)} moved, {len(failed)} failed")
        if failed:
            raise CommandError(f"{len(failed)} tenant(s) not moved off {server}: {', '.join(failed)}")

    def _stepper(self, name: str) -> Any:
        pause = os.environ.get(PAUSE_ENV, "")

        def on_step(step: str) -> None:
            self.stdout.write(f"{name}: {step}")
            if step == pause:  # the tests' hook (module docstring)
                self.stdout.write(f"paused at {step}")
                self.stdout.flush()
                sys.stdin.readline()

        return on_step

    @staticmethod
    def _line(result: TenantMoveResult) -> str:
        line = f"{result.tenant}: moved from {result.source} to {result.target} in {result.seconds:.1f} s"
        if result.resumed:
            line += " (an interrupted move, completed)"
        if result.backup is not None:
            return f"{line}; source dropped (backup: {result.backup})"
        return f"{line}; source kept on {result.source} (drop it with: move_tenant {result.tenant} --drop-source)"

    @staticmethod
    def _detail(result: TenantMoveResult) -> dict[str, Any]:
        detail: dict[str, Any] = {"tenant": result.tenant, "source": result.source, "target": result.target}
        detail["ok"] = result.ok
        detail.update(move_id=result.move_id, seconds=round(result.seconds, 2), resumed=result.resumed)
        if result.error:
            detail["error"] = result.error
        if result.backup is not None:
            detail["backup"] = result.backup.name
        return detail

    @staticmethod
    def _audit(tenant_id: int, action: str, detail: dict[str, Any]) -> None:
        """One entry per move (also each of a drain), besides the command's own."""
        audit_record(
            actor=system_user(),
            source=Source.COMMAND,
            action=action,
            target_type="tenants.tenant",
            target_id=tenant_id,
            detail=detail,
        )
