"""The registry of database servers: rows made from the config, their tenants, and placement.

The config file is the truth for where a server is and the account used there (`host`,
`port`, `user`, and the password it alone holds); the master's `DatabaseServer` rows hold what
an operator decides (`capacity`, `state`). `servers_sync` makes a row for each configured
server and keeps the address fields in step; it runs after `migrate`, before placement and
before the `servers` report, so a server added to the config needs no other step.

Placement (`server_place`): the open, usable server with the most free capacity (an unlimited
one beats any limited one; ties go to the fewest tenants, then the name); a named server must
be open, usable and not full. Full, draining or closed servers are never chosen.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, transaction
from django.db.models import Count, Q

from m3saas.engines import engine
from m3saas.exceptions import ApplicationError
from m3saas.servers import DEFAULT_SERVER, ServerUnknownError, server_config, server_configs
from tenants.models import DatabaseServer, Tenant

# The server `server_place()` picks when a caller names none (`seed --server`); None: by capacity.
_preferred: ContextVar[str | None] = ContextVar("m3saas_server_preferred", default=None)


@contextmanager
def server_preferred(name: str | None) -> Iterator[None]:
    """Within the block, tenants made without a server go to `name` (checked as a named server is)."""
    token = _preferred.set(name or None)
    try:
        yield
    finally:
        _preferred.reset(token)


class ServerNotFoundError(ApplicationError):
    status_code = 400
    code = "server_not_found"
    default_message = "No such database server."


class ServerUnavailableError(ApplicationError):
    """No server can take a new tenant (or the named one cannot): nothing was created."""

    status_code = 409
    code = "no_server_available"
    default_message = "No database server can take a new tenant."


@dataclass(frozen=True)
class ServerSummary:
    """A server as the reports show it: its row, how many tenants it holds, whether the config has it."""

    name: str
    host: str
    port: int
    capacity: int
    state: str
    tenants: int
    configured: bool

    @property
    def free(self) -> int | None:
        """Tenants it can still take (None: unlimited)."""
        return None if self.capacity < 1 else max(self.capacity - self.tenants, 0)

    @property
    def takes_tenants(self) -> bool:
        return self.configured and self.state == DatabaseServer.State.OPEN and self.free != 0

    def refusal(self) -> str:
        """Why it takes no new tenant (empty: it takes them)."""
        if not self.configured:
            return f"server {self.name!r} has no credentials in {settings.M3SAAS_CONFIG.source} (tenants.servers)"
        if self.state != DatabaseServer.State.OPEN:
            return f"server {self.name!r} is {self.state}"
        if self.free == 0:
            return f"server {self.name!r} is full ({self.tenants}/{self.capacity} tenants)"
        return ""


def servers_sync() -> list[DatabaseServer]:
    """Make a row for each configured server and keep its host, port and user as the config says.

    Capacity comes from the config only when the row is made; state and capacity are the
    operator's afterwards. Rows the config no longer declares are kept (they may hold tenants).
    """
    config = settings.M3SAAS_CONFIG
    rows = {row.name: row for row in DatabaseServer.objects.all()}
    for server in server_configs():
        host, port, user = server.host, server.port, server.user
        if not config.is_mysql:  # the implicit server: the folder of the tenant files
            host, port, user = str(config.tenant_sqlite_dir), 0, ""
        row = rows.get(server.name)
        if row is None:
            row, _ = DatabaseServer.objects.get_or_create(
                name=server.name, defaults={"host": host, "port": port, "user": user, "capacity": server.capacity}
            )
            rows[row.name] = row
        elif (row.host, row.port, row.user) != (host, port, user):
            row.host, row.port, row.user = host, port, user
            row.save(update_fields=["host", "port", "user"])
    return sorted(rows.values(), key=lambda row: (row.name != DEFAULT_SERVER, row.name))


def tenants_on_server(name: str) -> Q:
    """The tenants whose database is on server `name` (a blank server is the default one)."""
    on = Q(server_id=name)
    return on | Q(server__isnull=True) if name == DEFAULT_SERVER else on


def _tenant_counts() -> dict[str, int]:
    counts: dict[str, int] = {}
    for row in Tenant.objects.values("server").annotate(n=Count("id")).order_by():
        name = row["server"] or DEFAULT_SERVER
        counts[name] = counts.get(name, 0) + row["n"]
    return counts


def server_configured(name: str) -> bool:
    """Whether the config file holds the server's address and account (else it cannot be used)."""
    try:
        server_config(name)
    except ServerUnknownError:
        return False
    return True


def server_problem(name: str) -> str | None:
    """Why server `name` cannot be used now: not in the config, or unreachable (None: it answers)."""
    try:
        server = server_config(name)
    except ServerUnknownError as exc:
        return exc.message
    return engine().server_problem(server)


def _summaries(rows: list[DatabaseServer]) -> list[ServerSummary]:
    counts = _tenant_counts()
    return [
        ServerSummary(
            name=row.name,
            host=row.host,
            port=row.port,
            capacity=row.capacity,
            state=row.state,
            tenants=counts.get(row.name, 0),
            configured=server_configured(row.name),
        )
        for row in rows
    ]


def server_list() -> list[ServerSummary]:
    """Every server of the registry (the default one first) with its tenant count."""
    return _summaries(servers_sync())


def _rank(server: ServerSummary) -> tuple[float, int, str]:
    free = float("inf") if server.free is None else server.free
    return (-free, server.tenants, server.name)


def server_place(*, name: str | None = None) -> DatabaseServer:
    """The server a new tenant goes to: `name` if it can take one, else the open server with the
    most free capacity. Raises `ServerNotFoundError` / `ServerUnavailableError`.

    Call it inside the transaction that saves the tenant: the server rows stay locked (MySQL)
    until it ends, so two creations at once cannot both take a server's last place (outside a
    transaction the rows are read unlocked). Inside `server_preferred(x)`, no `name` means `x`.
    """
    name = name or _preferred.get()
    servers_sync()
    rows_query = DatabaseServer.objects.order_by("name")
    if transaction.get_connection(DEFAULT_DB_ALIAS).in_atomic_block:
        rows_query = rows_query.select_for_update()
    locked = list(rows_query)
    rows = {row.name: row for row in locked}
    summaries = {s.name: s for s in _summaries(locked)}
    if name:
        summary = summaries.get(name)
        if summary is None:
            raise ServerNotFoundError(f"No database server named {name!r}.")
        reason = summary.refusal()
        if reason:
            raise ServerUnavailableError(f"Cannot place the tenant: {reason}.")
        return rows[name]
    candidates = [s for s in summaries.values() if s.takes_tenants]
    if not candidates:
        reasons = "; ".join(s.refusal() for s in summaries.values()) or "no server is configured"
        raise ServerUnavailableError(f"No database server can take a new tenant: {reasons}.")
    return rows[min(candidates, key=_rank).name]
