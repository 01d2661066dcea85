"""Safe identifiers: the only names that ever reach SQL as database or user names."""

from __future__ import annotations

import re

from django.core.exceptions import ValidationError

IDENTIFIER_RE = re.compile(r"^[a-z][a-z0-9_]{0,47}$")
USER_RE = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
# Names MariaDB/MySQL keep for themselves, the master's alias, and its SQLite file and backup folder name.
RESERVED = frozenset({"default", "master", "root", "mysql", "information_schema", "performance_schema", "sys"})


def is_digits(text: str) -> bool:
    """Whether `text` is ASCII digits only, so `int(text)` reads it.

    `str.isdigit()` alone is true for "²" or "①", which `int()` refuses with a ValueError.
    """
    return text.isascii() and text.isdigit()


def _check(value: object, pattern: re.Pattern[str], what: str, limit: int) -> str:
    if not isinstance(value, str) or not pattern.fullmatch(value):
        raise ValidationError(
            f"{value!r} is not a safe {what}: use 1 to {limit} lower-case letters, digits and "
            "underscores, starting with a letter.",
            code="unsafe_identifier",
        )
    if value in RESERVED:
        raise ValidationError(f"{value!r} is reserved and cannot be used as a {what}.", code="reserved_identifier")
    if value == "test" or value.startswith("test_"):
        # A stock MariaDB lets every user into databases named test or test_...
        raise ValidationError(
            f"{value!r} cannot be used as a {what}: names 'test' and 'test_…' are open to every "
            "user on a stock MariaDB.",
            code="reserved_identifier",
        )
    return value


def validate_database_name(value: object) -> None:
    _check(value, IDENTIFIER_RE, "database name", 48)


def validate_user_name(value: object) -> None:
    _check(value, USER_RE, "database user name", 32)


def validate_module_name(value: object) -> None:
    if not isinstance(value, str) or not IDENTIFIER_RE.fullmatch(value):
        raise ValidationError(
            f"{value!r} is not a safe module name: use lower-case letters, digits and underscores, "
            "starting with a letter (it is the module's folder under modules/).",
            code="unsafe_identifier",
        )


def quote_mysql_identifier(name: str) -> str:
    """Backtick-quote a name that `validate_database_name` accepted."""
    validate_database_name(name)
    return f"`{name}`"


def grant_pattern(name: str) -> str:
    """The database name as a GRANT pattern: `_` and `%` are wildcards there, so escape them."""
    validate_database_name(name)
    return "`" + name.replace("\\", "\\\\").replace("_", "\\_").replace("%", "\\%") + "`"
