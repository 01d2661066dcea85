"""Serializer fields for module APIs that accept exactly what their OpenAPI schema declares.

DRF's fields are lenient: a `CharField` takes `0` as `"0"`, a primary key field takes `true`
or `"1"`, and a text of control characters that `str.strip()` removes is blank although the
schema allows it. A generated client trusts the schema, so module serializers use these fields
(through `ModuleModelSerializer`, or directly): JSON values must have the declared type (a form
sends only text, so there a number may be written as text), and every rule a field enforces is
in the schema as a length or a pattern.
"""

from __future__ import annotations

from typing import Any

from django.core.validators import ProhibitNullCharactersValidator, RegexValidator
from django.db import models
from rest_framework import serializers
from rest_framework.fields import empty
from rest_framework.utils import html

# What `str.strip()` removes (`str.isspace()`), spelt out so that every regex engine reading the
# schema (ECMA, Python, Rust) agrees; a test compares it with `str.isspace()`.
WHITESPACE_CLASS = r"\u0009-\u000d\u001c-\u0020\u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
# No NUL (DRF refuses it); and for a field that may not be blank, something besides whitespace.
# Linear: the first two classes are disjoint, so a long text never backtracks.
TEXT_PATTERN = r"^[^\u0000]*$"
NON_BLANK_TEXT_PATTERN = rf"^[{WHITESPACE_CLASS}]*[^{WHITESPACE_CLASS}\u0000][^\u0000]*$"


def _sent_as_text(field: serializers.Field) -> bool:
    """Whether the data came from a form (every value text) rather than JSON (typed values)."""
    return html.is_html_input(getattr(field.root, "initial_data", None))


class StrictCharField(serializers.CharField):
    """A string and nothing else; lengths count the text as sent, surrounding whitespace is then trimmed.

    A text of whitespace alone is blank. The rules are the field's validators (a length, a
    pattern), which is what drf-spectacular writes into the schema.
    """

    default_error_messages = {
        "invalid": "Not a valid string.",
        "text": "Null characters are not allowed.",
        "non_blank_text": "This field may not be blank or contain null characters.",
    }

    def __init__(self, *, trim_whitespace: bool = True, **kwargs: Any) -> None:
        # DRF would trim before the length checks; here they see what the client sent.
        super().__init__(trim_whitespace=False, **kwargs)
        self.trim = trim_whitespace
        pattern, message = (TEXT_PATTERN, "text") if self.allow_blank else (NON_BLANK_TEXT_PATTERN, "non_blank_text")
        # The pattern refuses NUL characters too, with the message that fits.
        self.validators = [v for v in self.validators if not isinstance(v, ProhibitNullCharactersValidator)]
        self.validators.append(RegexValidator(pattern, message=self.error_messages[message]))

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)

    def run_validation(self, data: Any = empty) -> Any:
        value = super().run_validation(data)
        return value.strip() if self.trim and isinstance(value, str) else value


class StrictPrimaryKeyRelatedField(serializers.PrimaryKeyRelatedField):
    """An integer id in JSON (not `true`, not `"1"`); in a form, its digits."""

    def to_internal_value(self, data: Any) -> Any:
        expected = str if _sent_as_text(self) else int
        if isinstance(data, bool) or not isinstance(data, expected):
            self.fail("incorrect_type", data_type=type(data).__name__)
        return super().to_internal_value(data)


class ModuleModelSerializer(serializers.ModelSerializer):
    """`ModelSerializer` with strict text fields and relations: what the schema says is what it takes."""

    serializer_field_mapping = {
        **serializers.ModelSerializer.serializer_field_mapping,
        models.CharField: StrictCharField,
        models.TextField: StrictCharField,
    }
    serializer_related_field = StrictPrimaryKeyRelatedField
