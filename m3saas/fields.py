"""Model fields of the platform."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.db import models

from m3saas.passwords import is_password_token, password_encrypt, passwords_equal

# Characters of a clear password; its token (about 4/3 of 57 + the padded length) fits 512.
CLEAR_PASSWORD_MAX_LENGTH = 128


def validate_clear_password(value: str) -> None:
    if not is_password_token(value) and len(value) > CLEAR_PASSWORD_MAX_LENGTH:
        raise ValidationError(
            f"A password has at most {CLEAR_PASSWORD_MAX_LENGTH} characters.", code="password_too_long"
        )


class EncryptedPasswordField(models.CharField):
    """A password stored only as a Fernet token (`m3saas.passwords`).

    Whatever writes the row (a service, the admin, a seed, the ORM, `QuerySet.update`), a clear
    value is encrypted on its way to the database; read back, the attribute holds the token.
    """

    default_validators = [validate_clear_password]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("max_length", 512)
        super().__init__(*args, **kwargs)

    def pre_save(self, model_instance: models.Model, add: bool) -> Any:
        value = getattr(model_instance, self.attname)
        if value is not None and not is_password_token(value):
            value = password_encrypt(value)
            setattr(model_instance, self.attname, value)
        return value

    def get_prep_value(self, value: Any) -> Any:
        value = super().get_prep_value(value)
        if value is None or is_password_token(value):
            return value
        return password_encrypt(value)

    @staticmethod
    def same_value(first: Any, second: Any) -> bool:
        """Whether two values (tokens or clear) hold the same password: tokens differ every time."""
        return isinstance(first, str) and isinstance(second, str) and passwords_equal(first, second)
