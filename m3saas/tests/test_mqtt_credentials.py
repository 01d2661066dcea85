"""Broker credentials: the file-RBAC hash format, `mqtt_hash_password`, the derived password.

`tenants/tests/test_mqtt_credentials.py` tests the `mqtt_credentials` command.
"""

from __future__ import annotations

import base64
import xml.etree.ElementTree as ET
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from m3saas.conf import BASE_DIR
from m3saas.mqtt.credentials import (
    TENANT_ROLE,
    MQTTPasswordSource,
    mqtt_password_hash,
    mqtt_password_verify,
    mqtt_tenant_password,
)

CREDENTIALS = BASE_DIR / "hive-mq" / "extensions" / "hivemq-file-rbac-extension" / "credentials.xml"


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def users_of(path: Path) -> dict[str, ET.Element]:
    return {u.findtext("name") or "": u for u in ET.parse(path).getroot().findall("users/user")}  # noqa: S314


# -- the hash format ----------------------------------------------------------------------------


def test_hash_has_base64_salt_iterations_and_a_64_byte_base64_key():
    salt, iterations, key = mqtt_password_hash(password="passs", iterations=100).split(":")
    assert len(base64.b64decode(salt, validate=True)) == 32
    assert iterations == "100"
    assert len(base64.b64decode(key, validate=True)) == 64


def test_hash_is_pbkdf2_hmac_sha512_of_the_password_and_the_decoded_salt():
    """Known answer, computed independently with `openssl kdf ... -kdfopt iter:100 PBKDF2` (SHA512, 64 bytes)."""
    expected = bytes.fromhex(
        "fef7276b107040a0a713bcbec9fd3e191cc6153249e245a3e1a22087dbe616060bbfc8411c6363f3c10ab5d02a56c38e"
        "2066a4e205b0ca8f959fd731e5fa584b"
    )
    encoded = mqtt_password_hash(password="password", salt=b64("salt"), iterations=100)
    assert encoded == f"{b64('salt')}:100:{base64.b64encode(expected).decode()}"


@pytest.mark.parametrize(
    ("password", "encoded"),
    [
        # The examples of the extension's README (hashed by its own Java tool).
        (
            "pass1",
            "WFNQUVB0UkxjM04xa0hSR1BQNGhuOTJKVzdlbXA4bjk=:100:"
            "FY12nwpUEbBK9EKQ/Aw/rQKSoA7jXsC0HKELwU2mLCVU39bJVK0zf4NemuFeDOHPO4BW1nOjxi6NporkC6rUog==",
        ),
        (
            "admin-password",
            "Vjc1a0lxQ3Nvb0ljNFVHNE9WRnM3RG1IZmdNUFcwVGY=:100:"
            "PL2FLqfpdhONG7qXjAMmdVn4wlMiXnypdXiFW09zqorFhKgoiixFQw2EVJJfE9Zn79q45V7Xpc6JeKLp0ntmYA==",
        ),
    ],
)
def test_hashes_made_by_the_extensions_tool_verify(password, encoded):
    assert mqtt_password_verify(password=password, encoded=encoded)
    assert not mqtt_password_verify(password=password + "x", encoded=encoded)


def test_a_fresh_hash_verifies_and_a_wrong_password_does_not():
    encoded = mqtt_password_hash(password="s3cret")
    assert mqtt_password_verify(password="s3cret", encoded=encoded)
    assert not mqtt_password_verify(password="s3cret ", encoded=encoded)


@pytest.mark.parametrize("encoded", ["", "abc", "a:b:c", "!!:100:AAAA", "c2FsdA==:0:AAAA", "c2FsdA==:100"])
def test_malformed_hashes_never_verify(encoded):
    assert not mqtt_password_verify(password="x", encoded=encoded)


def test_random_salts_differ():
    assert mqtt_password_hash(password="p").split(":")[0] != mqtt_password_hash(password="p").split(":")[0]


def test_shipped_credentials_entry_of_app_user_verifies_with_the_readme_password():
    app_user = users_of(CREDENTIALS)["app_user"]
    assert mqtt_password_verify(password="passs", encoded=app_user.findtext("password") or "")
    assert [r.text for r in app_user.findall("roles/id")] == ["superuser"]


def test_shipped_credentials_scope_tenant_users_to_their_username():
    roles = {r.findtext("id"): r for r in ET.parse(CREDENTIALS).getroot().findall("roles/role")}  # noqa: S314
    assert [t.text for t in roles[TENANT_ROLE].findall("permissions/permission/topic")] == ["${{username}}/#"]
    assert [t.text for t in roles["superuser"].findall("permissions/permission/topic")] == ["#"]


# -- mqtt_hash_password -------------------------------------------------------------------------


def test_hash_command_prints_a_hash_that_verifies():
    out = StringIO()
    call_command("mqtt_hash_password", "passs", stdout=out)
    assert mqtt_password_verify(password="passs", encoded=out.getvalue().strip())


def test_hash_command_uses_the_given_salt_and_iterations():
    out = StringIO()
    call_command("mqtt_hash_password", "password", "--salt", b64("salt"), "--iterations", "100", stdout=out)
    assert out.getvalue().strip() == mqtt_password_hash(password="password", salt=b64("salt"), iterations=100)


def test_hash_command_refuses_a_salt_that_is_not_base64():
    with pytest.raises(CommandError, match="not base64"):
        call_command("mqtt_hash_password", "p", "--salt", "not base64!")


def test_derived_password_is_neither_the_tenant_nor_the_database_password():
    from m3saas.engines import tenant_db_password
    from m3saas.passwords import password_encrypt
    from m3saas.tenancy.info import TenantInfo

    tenant = TenantInfo(id=1, name="acme", user="acme", password=password_encrypt("secret"))
    derived = mqtt_tenant_password(tenant=tenant, source=MQTTPasswordSource.DERIVED)
    assert derived == mqtt_tenant_password(tenant=tenant)
    assert derived not in {"secret", tenant_db_password(tenant.password)}
    assert mqtt_tenant_password(tenant=tenant, source=MQTTPasswordSource.TENANT) == "secret"


def test_a_hash_whose_iterations_are_not_ascii_digits_does_not_verify():
    salt, _, key = mqtt_password_hash(password="s3cret").split(":")
    assert not mqtt_password_verify(password="s3cret", encoded=f"{salt}:²:{key}")
