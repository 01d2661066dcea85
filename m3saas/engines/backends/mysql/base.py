"""Django's MySQL/MariaDB backend, logging in with one statement instead of three.

Every tenant has its own database account, so a request whose tenant has no open connection in
its thread logs in (issue 16, point 3). Stock Django and mysqlclient send three statements after
the handshake: the `init_command`, `SET NAMES <charset>` and the isolation level. Here they are
one `SET`, the configured `init_command`'s own assignments with the others added:

- `NAMES <charset> [COLLATE <collation>]`, exactly what mysqlclient would send after connecting
  (which then sends nothing: its connection class skips the `SET NAMES` it repeats).
- The isolation level as a session variable. Its name differs by server (`tx_isolation` on
  MariaDB before 11.1, `transaction_isolation` on MySQL and later MariaDB), so it is learnt from
  each server's handshake: a process's first login to a server sends Django's own statement,
  later ones fold it. A server that refuses the name (replaced behind the process's back, or a
  proxy that names another server) costs one retried login, and its logins then send Django's
  statement for the rest of the process.

An `init_command` that is not one plain `SET` is sent as configured, and the stock statements
follow it. A new wrapper (each worker thread makes one per tenant it serves) also skips Django's
query of the server's version and settings on its first connection: the answer is shared by the
wrappers of the same server, socket, `init_command` and kind of account in the process.

Nothing else differs from `django.db.backends.mysql`; `vendor` stays `mysql`.
"""

from __future__ import annotations

import re
import threading
from typing import Any

import MySQLdb
from django.db.backends.mysql import base as mysql_base
from django.utils.asyncio import async_unsafe
from django.utils.functional import cached_property
from MySQLdb import connections as mysqldb_connections

# MySQL's and MariaDB's "Unknown system variable".
ER_UNKNOWN_SYSTEM_VARIABLE = 1193
_MARIADB_VERSION = re.compile(r"(?:5\.5\.5-)?(\d+)\.(\d+)")
# One `SET` of plain assignments (no quotes, comments or second statement) can take more.
_PLAIN_SET = re.compile(r"SET\s+[\w@.]+\s*=\s*[\w.]+(?:\s*,\s*[\w@.]+\s*=\s*[\w.]+)*", re.IGNORECASE)
_NAME = re.compile(r"\w+")
# The mark `m3saas.tenancy.connections` puts on tenant entries: every tenant account is made alike.
_TENANT_MARK = "M3SAAS_TENANT"
# (host, port, unix socket) -> the session variable that holds the isolation level there; "" once
# the server refused the name its handshake suggested (Django's statement is sent instead).
_isolation_variables: dict[tuple[Any, Any, Any], str] = {}
# (host, port, unix socket, init_command, account) -> Django's `mysql_server_data` as first read.
_server_data: dict[tuple[Any, ...], dict[str, Any]] = {}
_lock = threading.Lock()


def isolation_variable(server_info: str) -> str | None:
    """The isolation level's session variable on a server whose handshake says `server_info`.

    None where the version cannot be read (the login then sends Django's own statement).
    """
    if "mariadb" not in server_info.lower():
        # MySQL 8 (the oldest Django supports) knows only this name.
        return "transaction_isolation"
    found = _MARIADB_VERSION.match(server_info)
    if found is None:
        return None
    version = (int(found[1]), int(found[2]))
    return "transaction_isolation" if version >= (11, 1) else "tx_isolation"


def _server_key(params: dict[str, Any]) -> tuple[Any, Any, Any]:
    return (params.get("host"), params.get("port"), params.get("unix_socket"))


def _init_command_with(init_command: str | None, names: str, assignments: list[str]) -> str | None:
    """One `SET`: `names` first (as mysqlclient sends it first), then `init_command`'s own
    assignments, then `assignments`; None where `init_command` is not one plain `SET`."""
    own: list[str] = []
    if init_command:
        if not _PLAIN_SET.fullmatch(init_command.strip()):
            return None
        own = [init_command.strip()[3:].strip()]
    return "SET " + ", ".join([names, *own, *assignments])


def _isolation_assignment(variable: str, level: str) -> str:
    return f"SESSION {variable}='{level.upper().replace(' ', '-')}'"


class Connection(mysqldb_connections.Connection):
    """mysqlclient's connection, without the `SET NAMES` its `init_command` has already sent."""

    def set_character_set(self, charset: str, collation: str | None = None) -> None:
        if charset != self.character_set_name():
            super().set_character_set(charset, collation)
            return
        self.encoding = mysqldb_connections._charset_to_encoding.get(charset, charset)


class DatabaseWrapper(mysql_base.DatabaseWrapper):
    _names_folded = False
    _isolation_folded = False

    @cached_property
    def mysql_server_data(self) -> dict[str, Any]:
        entry = self.settings_dict
        options = entry["OPTIONS"]
        account = "tenant" if entry.get(_TENANT_MARK) else entry["USER"]
        key = (entry["HOST"], entry["PORT"], options.get("unix_socket"), options.get("init_command"), account)
        data = _server_data.get(key)
        if data is None:
            # Django's own query, as its `cached_property` holds it.
            data = mysql_base.DatabaseWrapper.__dict__["mysql_server_data"].func(self)
            with _lock:
                _server_data[key] = data
        return data

    def get_connection_params(self) -> dict[str, Any]:
        params: dict[str, Any] = super().get_connection_params()
        self._names_folded = self._isolation_folded = False
        charset, collation = str(params.get("charset") or ""), str(params.get("collation") or "")
        if not _NAME.fullmatch(charset) or (collation and not _NAME.fullmatch(collation)):
            return params
        names = f"NAMES {charset}" + (f" COLLATE {collation}" if collation else "")
        variable = _isolation_variables.get(_server_key(params)) if self.isolation_level else None
        assignments = [_isolation_assignment(variable, self.isolation_level)] if variable else []
        folded = _init_command_with(params.get("init_command"), names, assignments)
        if folded is not None:
            params["init_command"] = folded
            params.pop("collation", None)  # set with the names above
            self._names_folded, self._isolation_folded = True, bool(variable)
        return params

    @async_unsafe
    def get_new_connection(self, conn_params: dict[str, Any]) -> Any:
        key = _server_key(conn_params)
        connect = Connection if self._names_folded else mysqldb_connections.Connection
        try:
            connection = connect(**conn_params)
        except MySQLdb.OperationalError as exc:
            if not (self._isolation_folded and exc.args and exc.args[0] == ER_UNKNOWN_SYSTEM_VARIABLE):
                raise
            # The server behind this address does not know the name: Django's statement from now on.
            entry = self.settings_dict
            with _lock:
                _isolation_variables[key] = ""
                for data_key in [k for k in _server_data if k[:2] == (entry["HOST"], entry["PORT"])]:
                    _server_data.pop(data_key, None)
            self.__dict__.pop("mysql_server_data", None)
            connection = connect(**self.get_connection_params())
        if key not in _isolation_variables:
            variable = isolation_variable(connection.get_server_info())
            if variable is not None:
                with _lock:
                    _isolation_variables.setdefault(key, variable)
        if connection.encoders.get(bytes) is bytes:
            connection.encoders.pop(bytes)
        return connection

    def init_connection_state(self) -> None:
        if not self._isolation_folded:
            super().init_connection_state()
            return
        # Django's statements, less the isolation level the `init_command` has set.
        level, self.isolation_level = self.isolation_level, None
        try:
            super().init_connection_state()
        finally:
            self.isolation_level = level
