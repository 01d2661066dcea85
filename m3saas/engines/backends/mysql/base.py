"""Django's MySQL/MariaDB backend, logging in with two statements fewer.

Every tenant has its own database account, so a request whose tenant has no open connection in
its thread logs in (issue 16, point 3). Stock Django and mysqlclient send three statements after
the handshake: the `init_command`, `SET NAMES <charset>` and the isolation level. Here:

- `SET NAMES` is skipped when the handshake already chose the character set (mysqlclient passes
  `charset` as the connection's `MYSQL_SET_CHARSET_NAME`, so the server starts the session with
  it). With a `collation` option, only mysqlclient's `SET NAMES … COLLATE …` is sent.
- The isolation level joins the `init_command`'s `SET` as a session variable. Its name differs by
  server (`tx_isolation` on MariaDB before 11.1, `transaction_isolation` on MySQL and later
  MariaDB), so it is learnt from each server's handshake: a process's first login to a server
  sends Django's own statement, later ones fold it. A server that refuses the name (replaced
  behind the process's back) is forgotten and the login is tried once more, the stock way.

A new wrapper (each worker thread makes one per tenant it serves) also skips Django's query of the
server's version and settings on its first connection: the answer is shared by every wrapper of
the same server and `init_command` in the process, as the server is the same.

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
# (host, port, unix socket) -> the session variable that holds the isolation level there.
_isolation_variables: dict[tuple[Any, Any, Any], str] = {}
# (host, port, init_command) -> Django's `mysql_server_data` as the first wrapper read it.
_server_data: dict[tuple[Any, Any, Any], dict[str, Any]] = {}
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


def _init_command_with(init_command: str | None, variable: str, level: str) -> str | None:
    """`init_command` with `variable` set too; None where it is not one plain `SET`."""
    assignment = f"SESSION {variable}='{level.upper().replace(' ', '-')}'"
    if not init_command:
        return f"SET {assignment}"
    if not re.fullmatch(r"SET\s+[^;'\"`]+", init_command.strip(), re.IGNORECASE):
        return None
    return f"{init_command.strip()}, {assignment}"


class Connection(mysqldb_connections.Connection):
    """mysqlclient's connection, without the `SET NAMES` that repeats what the handshake chose."""

    def set_character_set(self, charset: str, collation: str | None = None) -> None:
        if charset != self.character_set_name():
            super().set_character_set(charset, collation)
            return
        self.encoding = mysqldb_connections._charset_to_encoding.get(charset, charset)
        if collation:
            # What mysqlclient sends second, without the plain `SET NAMES` it sends first.
            self.query(f"SET NAMES {charset} COLLATE {collation}")
            self.store_result()


class DatabaseWrapper(mysql_base.DatabaseWrapper):
    _isolation_folded = False

    @cached_property
    def mysql_server_data(self) -> dict[str, Any]:
        entry = self.settings_dict
        key = (entry["HOST"], entry["PORT"], entry["OPTIONS"].get("init_command"))
        data = _server_data.get(key)
        if data is None:
            # Django's own query, as its `cached_property` holds it.
            data = mysql_base.DatabaseWrapper.__dict__["mysql_server_data"].func(self)
            with _lock:
                _server_data[key] = data
        return data

    def get_connection_params(self) -> dict[str, Any]:
        params: dict[str, Any] = super().get_connection_params()
        self._isolation_folded = False
        if self.isolation_level:
            variable = _isolation_variables.get(_server_key(params))
            folded = variable and _init_command_with(params.get("init_command"), variable, self.isolation_level)
            if folded:
                params["init_command"] = folded
                self._isolation_folded = True
        return params

    @async_unsafe
    def get_new_connection(self, conn_params: dict[str, Any]) -> Any:
        try:
            connection = Connection(**conn_params)
        except MySQLdb.OperationalError as exc:
            if not (self._isolation_folded and exc.args and exc.args[0] == ER_UNKNOWN_SYSTEM_VARIABLE):
                raise
            # The server behind this address no longer knows the name: learn it again.
            with _lock:
                _isolation_variables.pop(_server_key(conn_params), None)
            self._isolation_folded = False
            stock = dict(conn_params)
            stock["init_command"] = self.settings_dict["OPTIONS"].get("init_command")
            if stock["init_command"] is None:
                del stock["init_command"]
            connection = Connection(**stock)
        key = _server_key(conn_params)
        if key not in _isolation_variables:
            variable = isolation_variable(connection.get_server_info())
            if variable is not None:
                with _lock:
                    _isolation_variables[key] = variable
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
