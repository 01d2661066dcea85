"""One line instead of a traceback when `manage.py` or gunicorn cannot start.

A configuration error (`ConfigError`: the config file, `SECRET_KEY`, an environment value)
exits with 2, which `bin/docker-entrypoint.sh` reads as "waiting will not help"; a database
server that does not answer exits with 1, so the entry point keeps waiting for it.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import NoReturn

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, DatabaseError, connections

from m3saas.conf import ConfigError
from m3saas.exceptions import ApplicationError

EXIT_CONFIG = 2
EXIT_UNREACHABLE = 1
# `manage.py` commands that work without the master database (the others check it first).
COMMANDS_WITHOUT_DATABASE = frozenset(
    {"help", "version", "check", "makemigrations", "collectstatic", "shell", "startapp", "startproject"}
    | {"startmodule", "mqtt_hash_password"}
)


def _causes(error: BaseException) -> Iterator[BaseException]:
    seen: BaseException | None = error
    while seen is not None:
        yield seen
        seen = seen.__cause__ or seen.__context__


def database_unreachable_message(error: BaseException) -> str | None:
    """`error` as one line naming the master's host and port, or None when it is not "cannot connect"."""
    from m3saas.engines import engine

    adapter = engine()
    for cause in _causes(error):
        driver = isinstance(cause, DatabaseError) or type(cause).__module__.startswith(("MySQLdb", "sqlite3"))
        if driver and adapter.is_unavailable(cause):
            return f"{database_location()} does not answer ({_driver_text(cause)}); is the server running?"
    return None


def database_location() -> str:
    """Where the master database is, as an operator would look for it."""
    config = settings.M3SAAS_CONFIG
    db = config.database
    where = f"{db.host}:{db.port}, database {db.name!r}" if config.is_mysql else repr(db.name)
    return f"the master database ({where}; from {config.source})"


def _driver_text(error: BaseException) -> str:
    args = error.args
    if len(args) == 2 and isinstance(args[0], int):
        return f"{args[0]}: {args[1]}"
    return str(error) or type(error).__name__


def master_database_check() -> None:
    """Connect to the master once, then close; raises the driver's error when it does not answer."""
    connection = connections[DEFAULT_DB_ALIAS]
    try:
        connection.ensure_connection()
    finally:
        connection.close()


def command_needs_database(argv: list[str]) -> bool:
    """Whether `manage.py <argv[1]>` reads the master (so a server that does not answer is reported first)."""
    name = argv[1] if len(argv) > 1 else "help"
    return not name.startswith("-") and name not in COMMANDS_WITHOUT_DATABASE


def fail(message: str, code: int) -> NoReturn:
    sys.stderr.write(f"M3SaaS cannot start: {message}\n")
    raise SystemExit(code)


@contextmanager
def one_line_errors() -> Iterator[None]:
    """Turn a configuration error, an unreachable master database or an error an operator can act
    on (`ApplicationError`, e.g. a tenant password no configured key opens) into one line and an
    exit code."""
    try:
        yield
    except ConfigError as exc:
        fail(str(exc), EXIT_CONFIG)
    except ApplicationError as exc:
        sys.stderr.write(f"Error: {exc.message}\n")
        raise SystemExit(1) from None
    except DatabaseError as exc:
        message = database_unreachable_message(exc)
        if message is None:
            raise
        fail(message, EXIT_UNREACHABLE)
