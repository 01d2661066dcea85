"""Tenant passwords at rest: Fernet tokens under the config's `tenantPasswordKeys`.

The master database holds only tokens, so a dump of it alone gives no tenant's database
password. Every configured key decrypts; the first one encrypts (`MultiFernet`). Rotating is
re-encrypting every stored token with the first key (`manage.py tenant_passwords_rotate`),
after which the old keys can leave the config. Cached `TenantInfo`s carry the token: decrypt
only where the clear password is used (the database user's password, the MQTT password).

Imported while the settings load (through the engines): nothing here may need the app registry.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings

from m3saas.exceptions import ServiceUnavailableError

# The config key that lists the keys, and how to make one.
KEYS_SETTING = "tenantPasswordKeys"
KEY_HINT = "make one with: python3 -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())'"
# A Fernet token: version 0x80, 8-byte time, 16-byte IV, AES-CBC blocks, 32-byte HMAC.
_TOKEN_VERSION = 0x80
_TOKEN_OVERHEAD = 1 + 8 + 16 + 32
_AES_BLOCK = 16


class PasswordKeyError(ServiceUnavailableError):
    """A stored tenant password cannot be decrypted: the config lacks the key that encrypted it."""

    code = "tenant_password_unreadable"
    default_message = (
        f"A tenant password cannot be decrypted with the configured {KEYS_SETTING}: "
        "the key that encrypted it is missing or wrong."
    )


def password_key_derive(secret: str) -> str:
    """A Fernet key derived from `secret` (the embedded default's, from its built-in salt)."""
    digest = hashlib.sha256(b"m3saas tenant passwords\0" + secret.encode("utf-8")).digest()
    return base64.urlsafe_b64encode(digest).decode("ascii")


def password_key_problem(key: str) -> str | None:
    """Why `key` is not a Fernet key, or None when it is one."""
    try:
        Fernet(key)
    except (ValueError, TypeError, binascii.Error):
        return "is not a Fernet key (32 url-safe base64-encoded bytes)"
    return None


@lru_cache(maxsize=8)
def _keys(keys: tuple[str, ...]) -> MultiFernet:
    return MultiFernet([Fernet(key) for key in keys])


def _fernet() -> MultiFernet:
    config = settings.M3SAAS_CONFIG
    if not config.password_keys:
        raise PasswordKeyError(
            f"{config.source}: key '{KEYS_SETTING}' is missing, so tenant passwords can be neither "
            f"encrypted nor read ({KEY_HINT})."
        )
    return _keys(tuple(config.password_keys))


def is_password_token(value: str) -> bool:
    """Whether `value` has the shape of a Fernet token (whichever key made it)."""
    if not value.startswith("gAAAAA"):
        return False
    try:
        raw = base64.urlsafe_b64decode(value.encode("ascii"))
    except (ValueError, binascii.Error):
        return False
    body = len(raw) - _TOKEN_OVERHEAD
    return raw[0] == _TOKEN_VERSION and body > 0 and body % _AES_BLOCK == 0


def password_encrypt(clear: str) -> str:
    """The token of `clear` under the first configured key."""
    return _fernet().encrypt(clear.encode("utf-8")).decode("ascii")


def password_decrypt(token: str) -> str:
    """The clear password of a stored token; `PasswordKeyError` when no configured key opens it."""
    if not is_password_token(token):
        raise PasswordKeyError("A tenant password is stored unencrypted: run `manage.py migrate` to encrypt it.")
    try:
        return _fernet().decrypt(token.encode("ascii")).decode("utf-8")
    except InvalidToken:
        raise PasswordKeyError() from None


def password_rotate(token: str) -> str:
    """`token` re-encrypted with the first configured key; `PasswordKeyError` when no key opens it."""
    password_decrypt(token)  # the same errors as reading it
    try:
        return _fernet().rotate(token.encode("ascii")).decode("ascii")
    except InvalidToken:
        raise PasswordKeyError() from None


def passwords_equal(first: str, second: str) -> bool:
    """Whether two passwords, each a token or clear, are the same clear password.

    A token no configured key opens equals nothing.
    """
    try:
        clear = [password_decrypt(value) if is_password_token(value) else value for value in (first, second)]
    except PasswordKeyError:
        return False
    return hmac.compare_digest(clear[0].encode("utf-8"), clear[1].encode("utf-8"))
