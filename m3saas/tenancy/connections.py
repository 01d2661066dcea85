"""The only place that registers tenant connection aliases in `django.db.connections`."""

from __future__ import annotations

import functools
import hashlib
import logging
import threading
from typing import Any, cast

from asgiref.local import Local
from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, DatabaseError, connections
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.utils import ConnectionHandler

from m3saas.engines import engine
from m3saas.passwords import PasswordKeyError
from m3saas.servers import DEFAULT_SERVER, ServerUnknownError, server_config
from m3saas.settings_snapshot import snapshot
from m3saas.tenancy.directory import tenant_directory
from m3saas.tenancy.info import TenantInfo

logger = logging.getLogger(__name__)

# Marks the entries registered here, so tenant aliases are told apart from configured ones.
TENANT_MARK = "M3SAAS_TENANT"
_SIGNATURE = "M3SAAS_SIGNATURE"
# The name of the server a tenant entry points at (its admin account is `server_config(name)`'s).
SERVER_KEY = "M3SAAS_SERVER"
# On an entry registered in bulk: the (name, user, password token, server) its database password
# is derived from when this process first makes a wrapper for it (`_entry_complete`).
_DEFERRED = "M3SAAS_DEFERRED_PASSWORD"


# Closed tenant wrappers a thread keeps for reuse (about 3 KiB each).
PARKED_WRAPPERS_PER_THREAD = 1024
# Taken by `TenantConnectionHandler.settings_update` (writers only).
_settings_lock = threading.Lock()


class TenantConnectionHandler(ConnectionHandler):
    """Django's connection handler that remembers which aliases each thread has a wrapper for.

    Django answers `all(initialized_only=True)` by probing the thread-local store for every
    alias in `settings`, and calls it three times per request (`close_old_connections` twice,
    `reset_queries`): with every tenant a worker ever served registered, that is O(tenants) per
    request (measured: +5 ms per request with 1,000 registered tenants). Here it is
    O(this thread's wrappers), in least recently used order (see `mark_used`).

    A tenant wrapper whose connection the trims closed is *parked*: out of Django's store (so
    it costs nothing per request) but kept, up to `PARKED_WRAPPERS_PER_THREAD`, and put back on
    the alias's next use, so a reconnection skips the per-wrapper server queries Django makes.

    Its `settings` (every alias's entry) is replaced, never changed in place (`settings_update`):
    other threads iterate it while a tenant is registered, Django on every request
    (`BaseHandler.make_view_atomic`), and a dict that grows under an iteration raises
    "dictionary changed size during iteration" there, a 500. So, after the first tenant, it is
    no longer `settings.DATABASES`, which keeps only the configured databases.
    """

    _connections: Local  # Django's per-thread store of wrappers
    # This handler's per-thread order of wrappers and parked wrappers. A plain `threading.local`,
    # not asgiref's `Local` as Django's own store: that one asks asyncio for a running loop (a
    # raised and caught RuntimeError) on every access, and the route reads this store 3-4 times
    # per request (issue 16). Where a loop runs, Django refuses database work anyway
    # (`SynchronousOnlyOperation`), so per thread is per wrapper store wherever wrappers are used.
    _made: threading.local

    def _aliases(self) -> dict[str, None]:
        try:
            aliases: dict[str, None] = self._made.aliases
        except AttributeError:
            # First use in this thread: wrappers made before tracking began are found once, slowly.
            aliases = dict.fromkeys(a for a in list(self.settings) if hasattr(self._connections, a))
            self._made.aliases = aliases
        return aliases

    def _parked(self) -> dict[str, BaseDatabaseWrapper]:
        try:
            parked: dict[str, BaseDatabaseWrapper] = self._made.parked
        except AttributeError:
            parked = self._made.parked = {}
        return parked

    def settings_update(self, changes: dict[str, dict[str, Any] | None]) -> None:
        """Put each alias's entry in `settings` (None: drop the alias), by replacing the dict.

        Readers need no lock: they hold the old dict or the new one, each whole. Writers take one,
        or two threads registering at once would each drop the other's alias. A batch is one copy.
        """
        with _settings_lock:
            replaced = dict(self.settings)
            for alias, entry in changes.items():
                if entry is None:
                    replaced.pop(alias, None)
                else:
                    replaced[alias] = entry
            self._settings = replaced
            self.settings = replaced  # the instance's value of Django's cached property

    def create_connection(self, alias: str) -> BaseDatabaseWrapper:
        entry = self.settings.get(alias)
        if entry is not None and _DEFERRED in entry:
            _entry_complete(entry)
        return super().create_connection(alias)

    def __getitem__(self, alias: str) -> BaseDatabaseWrapper:
        try:
            current: BaseDatabaseWrapper = getattr(self._connections, alias)
        except AttributeError:
            pass
        else:
            if current.settings_dict is self.settings.get(alias) or not current.settings_dict.get(TENANT_MARK):
                return current
            # The tenant alias was registered again (new password or user) by another thread:
            # this thread's wrapper still holds the old settings, so it is replaced.
            current.close()
            delattr(self._connections, alias)
        conn = self._parked().pop(alias, None)
        # A re-registered alias has a new settings entry: its parked wrapper is stale.
        if conn is not None and conn.settings_dict is self.settings.get(alias):
            setattr(self._connections, alias, conn)
        else:
            conn = super().__getitem__(alias)
        self._aliases()[alias] = None
        return conn

    def __setitem__(self, key: str, value: BaseDatabaseWrapper) -> None:
        super().__setitem__(key, value)
        self._parked().pop(key, None)
        self._aliases()[key] = None

    def __delitem__(self, key: str) -> None:
        super().__delitem__(key)
        self._parked().pop(key, None)
        self._aliases().pop(key, None)

    def all(self, initialized_only: bool = False) -> list[BaseDatabaseWrapper]:
        if not initialized_only:
            return list(super().all())
        aliases = self._aliases()
        found = []
        for alias in list(aliases):
            conn = getattr(self._connections, alias, None)
            if conn is None:
                del aliases[alias]  # dropped behind the handler's back
            else:
                found.append(conn)
        return found

    def wrapper_count(self) -> int:
        """How many wrappers this thread holds (an upper bound of its open connections)."""
        return len(self._aliases())

    def mark_used(self, alias: str) -> int:
        """Move `alias` to the most recently used end of this thread's order; return
        `wrapper_count()` (the trim after each request needs both)."""
        aliases = self._aliases()
        if alias in aliases:
            del aliases[alias]
            aliases[alias] = None
        return len(aliases)

    def unpark(self, alias: str) -> None:
        """Forget this thread's parked wrapper of `alias`, if any."""
        self._parked().pop(alias, None)

    def park(self, conn: BaseDatabaseWrapper) -> None:
        """Take this thread's closed wrapper `conn` out of the store, keeping it for reuse."""
        if conn.connection is not None or getattr(self._connections, conn.alias, None) is not conn:
            return
        super().__delitem__(conn.alias)
        self._aliases().pop(conn.alias, None)
        parked = self._parked()
        parked[conn.alias] = conn
        if len(parked) > PARKED_WRAPPERS_PER_THREAD:
            del parked[next(iter(parked))]


def connection_handler_install() -> None:
    """Turn `django.db.connections` (imported by reference everywhere) into a `TenantConnectionHandler`.

    Called by `M3SaaSConfig.ready()`, before the first tenant alias is registered; the Django
    internals it relies on are checked by `tests/test_django_internals.py`.
    """
    if not isinstance(connections, TenantConnectionHandler):
        connections._made = threading.local()  # type: ignore[attr-defined]
        connections.__class__ = TenantConnectionHandler


# The same object as `django.db.connections`, typed as what `connection_handler_install` made it.
_handler = cast(TenantConnectionHandler, connections)


def tenant_database_settings(
    *, name: str, user: str, password: str | None, server: str = DEFAULT_SERVER
) -> dict[str, Any]:
    """A complete `DATABASES` entry for a tenant database on `server` (`password`: the stored
    token; None: no database password yet, nothing decrypted)."""
    try:
        entry = engine().tenant_settings(
            settings.M3SAAS_CONFIG, name=name, user=user, password=password, server=server_config(server)
        )
    except PasswordKeyError as exc:
        raise PasswordKeyError(f"Tenant {name!r}: {exc.message}") from None
    entry[SERVER_KEY] = server or DEFAULT_SERVER
    entry["CONN_MAX_AGE"] = settings.TENANT_CONN_MAX_AGE
    entry["CONN_HEALTH_CHECKS"] = True
    # Never inherit ATOMIC_REQUESTS: it would open a connection to every tenant per request.
    entry["ATOMIC_REQUESTS"] = False
    entry[TENANT_MARK] = True
    # Fill Django's defaults (TIME_ZONE, TEST, ...) the way it does for configured entries.
    connections.configure_settings({DEFAULT_DB_ALIAS: {}, name: entry})
    return entry


def is_tenant_alias(alias: str) -> bool:
    entry = connections.settings.get(alias)
    return bool(entry and entry.get(TENANT_MARK))


# `atomic_request_aliases`' answer for one settings dict: (that dict, its size, the aliases).
_atomic_aliases: tuple[dict[str, Any] | None, int, tuple[str, ...]] = (None, 0, ())


def atomic_request_aliases() -> tuple[str, ...]:
    """The databases whose entry asks for `ATOMIC_REQUESTS`: configured ones only, since a tenant
    entry never does (`tenant_database_settings`). Worked out once per settings dict, which
    `settings_update` replaces on every change, so a request does not walk every tenant."""
    global _atomic_aliases
    current = connections.settings
    seen, size, aliases = _atomic_aliases
    if seen is not current or size != len(current):
        aliases = tuple(
            alias for alias, entry in current.items() if entry.get("ATOMIC_REQUESTS") and not entry.get(TENANT_MARK)
        )
        _atomic_aliases = (current, len(current), aliases)
    return aliases


def tenant_aliases() -> list[str]:
    return [alias for alias, entry in connections.settings.items() if entry.get(TENANT_MARK)]


def tenant_connection_register(tenant: TenantInfo, *, defer_password: bool = False) -> str:
    """Register (or refresh) the tenant's alias; cheap when it is already current.

    `defer_password=True` registers it without decrypting its password, which is derived on the
    alias's first connection (`_entry_complete`): for the registration of every tenant before a
    command line is parsed, since the command may never connect to most of them
    (`migrate_tenants` skips unchanged tenants unopened) and a Fernet decryption per tenant would
    cost 10,000 of them at start-up.
    """
    alias, wanted = _entry_wanted(tenant, defer_password=defer_password)
    if wanted is not None:
        _handler.settings_update({alias: wanted})
    return alias


def _entry_wanted(tenant: TenantInfo, *, defer_password: bool) -> tuple[str, dict[str, Any] | None]:
    """The tenant's alias, and the entry to register for it (None: the registered one is current).

    A changed entry's wrapper in this thread is closed (the next use reads the new entry).
    """
    alias = tenant.alias
    if alias == DEFAULT_DB_ALIAS:
        raise ValueError("a tenant cannot use the master alias 'default'")
    current = connections.settings.get(alias)
    if current is not None and not current.get(TENANT_MARK):
        raise ValueError(f"alias {alias!r} is a configured database, not a tenant")
    signature = _signature(tenant)
    if current is not None and current.get(_SIGNATURE) == signature:
        if _DEFERRED in current and not defer_password:
            _entry_complete(current)  # an unreadable password is an error here, as below
        return alias, None
    wanted = tenant_database_settings(
        name=tenant.name,
        user=tenant.user,
        password=None if defer_password else tenant.password,
        server=tenant.server,
    )
    if defer_password:
        wanted[_DEFERRED] = (tenant.name, tenant.user, tenant.password, tenant.server)
    wanted[_SIGNATURE] = signature
    if current is not None:
        _close_in_this_thread(alias)
    return alias, wanted


def _entry_complete(entry: dict[str, Any]) -> None:
    """Derive a bulk-registered entry's database password, in place (wrappers hold this very dict).

    Raises `PasswordKeyError` when no configured key opens the token (the entry stays deferred).
    Threads may race here: each writes the same value before the mark goes.
    """
    deferred = entry.get(_DEFERRED)
    if deferred is None:
        return
    name, user, token, server = deferred
    entry["PASSWORD"] = tenant_database_settings(name=name, user=user, password=token, server=server)["PASSWORD"]
    entry.pop(_DEFERRED, None)


def _signature(tenant: TenantInfo) -> str:
    """Changes with anything the entry is made of: a tenant moved to another server (or a server
    given a new address) registers again, and every thread's wrapper is replaced on its next use."""
    server = server_config(tenant.server)
    return _digest(tenant.user, tenant.password, server.name, server.host, server.port)


@functools.lru_cache(maxsize=4096)
def _digest(user: str, password: str, server: str, host: str, port: int) -> str:
    """Remembered, as every request compares its tenant's signature (issue 16)."""
    return hashlib.sha256(f"{user}\0{password}\0{server}\0{host}\0{port}".encode()).hexdigest()


def tenant_alias_server(alias: str) -> str:
    """The server the registered alias `alias` points at (the master's: the default server)."""
    entry = connections.settings.get(alias) or {}
    return str(entry.get(SERVER_KEY) or DEFAULT_SERVER)


def tenant_connection_unregister(alias: str) -> None:
    """Close this thread's connection to `alias` and forget the alias."""
    if is_tenant_alias(alias):
        _close_in_this_thread(alias)
        _handler.settings_update({alias: None})


def _close_in_this_thread(alias: str) -> None:
    _handler.unpark(alias)
    for conn in connections.all(initialized_only=True):
        if conn.alias == alias:
            conn.close()
            # Drop the wrapper so the next use reads the new settings.
            del connections[alias]
            return


def _open_tenant_connections() -> list[BaseDatabaseWrapper]:
    """This thread's open tenant connections, least recently used first."""
    return [
        c
        for c in _handler.all(initialized_only=True)
        if c.connection is not None and c.settings_dict.get(TENANT_MARK) and not c.in_atomic_block
    ]


def _close_and_park(conns: list[BaseDatabaseWrapper]) -> int:
    for conn in conns:
        conn.close()
        _handler.park(conn)
    return len(conns)


def tenant_connections_trim(*, keep: str | None = None) -> int:
    """Close this thread's open tenant connections beyond `TENANT_MAX_OPEN_CONNECTIONS`.

    Returns how many were closed: the least recently used first; `keep` (the alias just used)
    is marked most recently used, so it is closed last.
    """
    count = _handler.mark_used(keep) if keep is not None else _handler.wrapper_count()
    limit = snapshot().tenant_max_open_connections
    if count <= limit:
        return 0
    open_conns = _open_tenant_connections()
    excess = len(open_conns) - limit
    return _close_and_park(open_conns[:excess]) if excess > 0 else 0


def tenant_connection_make_room(alias: str) -> int:
    """Before `alias` is used: when it has no open connection in this thread, close the least
    recently used ones so that opening it keeps the thread within `TENANT_MAX_OPEN_CONNECTIONS`.

    Returns how many were closed.
    """
    room = max(snapshot().tenant_max_open_connections - 1, 0)
    if _handler.wrapper_count() <= room:
        return 0
    open_conns = _open_tenant_connections()
    if any(c.alias == alias for c in open_conns):
        return 0
    excess = len(open_conns) - room
    return _close_and_park(open_conns[:excess]) if excess > 0 else 0


def tenant_connections_register_all() -> int:
    """Register every tenant of the master database; used before a command line is parsed.

    Three master queries whatever the number of tenants, and no password decrypted (see
    `tenant_connection_register(…, defer_password=True)`). A master database without the tenants table yet
    (a fresh install) registers nothing.
    """
    try:
        infos = tenant_directory().all()
    except DatabaseError as exc:
        logger.debug("tenants not registered: %s", exc)
        return 0
    registered, reason = 0, ""
    unknown: list[str] = []
    changes: dict[str, dict[str, Any] | None] = {}
    for info in infos:
        # Nothing decrypted here: every command starts, also with a password no configured key
        # opens (`migrate` encrypts old rows, the rotation reports); connecting to that tenant
        # raises `PasswordKeyError`.
        try:
            alias, wanted = _entry_wanted(info, defer_password=True)
        except ServerUnknownError as exc:
            unknown.append(info.name)
            reason = exc.message
        else:
            if wanted is not None:
                changes[alias] = wanted
            registered += 1
    if changes:
        _handler.settings_update(changes)  # one copy of the settings for every tenant
    if unknown:
        logger.warning("tenants not registered (%s): %s", ", ".join(unknown), reason)
    return registered
