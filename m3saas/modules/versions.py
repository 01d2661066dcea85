"""Module versions as they appear in URLs: `1`, `1.4`, `1.0.1`, compared as versions."""

from __future__ import annotations

import functools
import re

# At most 9 digits a part: a longer part is refused like any malformed version, before `int()`
# meets a part past Python's digit limit (4,300) or a number no module version will ever have.
VERSION_PART = "[0-9]{1,9}"
VERSION_RE = re.compile(rf"^{VERSION_PART}(?:\.{VERSION_PART})*$")


def module_label(name: str, major: int) -> str:
    """The Django app label of a module version: `<name>_v<major>` (`test_v1`)."""
    return f"{name}_v{major}"


@functools.total_ordering
class Version:
    """A dotted version; `1.10 > 1.9` and `1.0 == 1`. Compares with strings too."""

    __slots__ = ("_key", "parts", "text")

    def __init__(self, text: str) -> None:
        if not VERSION_RE.fullmatch(text):
            raise ValueError(f"not a version: {text!r}")
        self.text = text
        self.parts = tuple(int(p) for p in text.split("."))
        key = list(self.parts)
        while len(key) > 1 and key[-1] == 0:
            key.pop()
        self._key = tuple(key)

    @property
    def major(self) -> int:
        return self.parts[0]

    @staticmethod
    def _coerce(other: object) -> Version | None:
        if isinstance(other, Version):
            return other
        if isinstance(other, (str, int)):
            return Version(str(other))
        return None

    def __eq__(self, other: object) -> bool:
        o = self._coerce(other)
        return NotImplemented if o is None else self._key == o._key

    def __lt__(self, other: object) -> bool:
        o = self._coerce(other)
        if o is None:
            return NotImplemented
        return self._key < o._key

    def __hash__(self) -> int:
        return hash(self._key)

    def __str__(self) -> str:
        return self.text

    def __repr__(self) -> str:
        return f"Version({self.text!r})"
