"""Environment settings read strictly: a bad value stops start-up with one `ConfigError` line.

django-environ alone raises a bare `ValueError` for `TENANT_CACHE_TIMEOUT=abc` and reads
`DEBUG=maybe` as false. This reader names the variable, the value and the expected form.
"""

from __future__ import annotations

from typing import Any

import environ

from m3saas.conf import ConfigError

WEEK = 7 * 24 * 3600.0
TRUE_WORDS = frozenset({"1", "true", "yes", "on"})
FALSE_WORDS = frozenset({"0", "false", "no", "off", ""})
_EXPECTED = {
    bool: "a boolean (true/false, yes/no, on/off or 1/0)",
    int: "a whole number (e.g. 300)",
    float: "a number (e.g. 2.5)",
}


def env_error(name: str, value: str, expected: str) -> ConfigError:
    return ConfigError(f"Environment variable {name}={value!r} is not valid: expected {expected}")


class Env(environ.Env):
    """`environ.Env` whose booleans and numbers refuse what they cannot read, naming the variable."""

    def get_value(
        self, var: str, cast: Any = None, default: Any = environ.Env.NOTSET, parse_default: bool = False
    ) -> Any:
        raw = self.ENVIRON.get(f"{self.prefix}{var}")
        if raw is not None and cast is bool and raw.strip().lower() not in TRUE_WORDS | FALSE_WORDS:
            raise env_error(var, raw, _EXPECTED[bool])
        try:
            return super().get_value(var, cast=cast, default=default, parse_default=parse_default)
        except (ValueError, TypeError) as exc:
            if raw is None:
                raise
            raise env_error(var, raw, _EXPECTED.get(cast, str(exc) or "another form")) from None

    def seconds(self, var: str, *, default: float, at_most: float = WEEK) -> float:
        """A duration in seconds, more than 0 and at most `at_most`, else a `ConfigError` line."""
        value = float(self.float(var, default=default))
        if not 0 < value <= at_most:  # NaN fails too
            raise env_error(
                var, str(self.ENVIRON.get(f"{self.prefix}{var}")), f"seconds, more than 0 and at most {at_most:g}"
            )
        return value

    def choice(self, var: str, *, choices: tuple[str, ...], default: str) -> str:
        """A word from `choices` (case-insensitive), else a `ConfigError` listing them."""
        value = str(self.str(var, default=default)).strip()
        for choice in choices:
            if value.lower() == choice.lower():
                return choice
        raise env_error(var, value, "one of " + ", ".join(choices))
