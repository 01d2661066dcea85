"""Request parsers of the API: DRF's, refusing hostile input with a 400 rather than failing on it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import IO, Any

from rest_framework import parsers
from rest_framework.exceptions import ParseError

# Deeper JSON is refused: parsing it would hit Python's recursion limit (about 1,000 levels, in
# the parser or in whatever walks the data next), and no API document needs it.
MAX_JSON_DEPTH = 100


def _json_too_deep(data: Any) -> bool:
    """Whether `data` nests lists and objects deeper than `MAX_JSON_DEPTH`; iterative, never recursive."""
    stack = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, (dict, list)):
            if depth > MAX_JSON_DEPTH:
                return True
            stack.extend((child, depth + 1) for child in (value.values() if isinstance(value, dict) else value))
    return False


def _too_deep() -> ParseError:
    return ParseError(f"JSON parse error - nested deeper than {MAX_JSON_DEPTH} levels.")


class JSONParser(parsers.JSONParser):
    """DRF's JSON parser, refusing JSON nested deeper than `MAX_JSON_DEPTH` with a 400, not a 500."""

    def parse(
        self, stream: IO[Any], media_type: str | None = None, parser_context: Mapping[str, Any] | None = None
    ) -> Any:
        try:
            data = super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise _too_deep() from None
        if _json_too_deep(data):
            raise _too_deep()
        return data
