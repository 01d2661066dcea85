"""Encrypt the tenant passwords stored in clear (reversible: decrypts them back).

Plain SQL, not the model: the field would encrypt again what the reverse step decrypts.
Needs the config's `tenantPasswordKeys`, as the running app does.
"""

from typing import Any

from django.db import migrations

from m3saas.passwords import is_password_token, password_decrypt, password_encrypt


def _rewrite(apps: Any, schema_editor: Any, *, encrypting: bool) -> None:
    table = schema_editor.quote_name(apps.get_model("tenants", "Tenant")._meta.db_table)
    with schema_editor.connection.cursor() as cursor:
        cursor.execute(f"SELECT id, password FROM {table}")  # noqa: S608
        rows = cursor.fetchall()
        for pk, stored in rows:
            if is_password_token(stored) == encrypting:
                continue
            value = password_encrypt(stored) if encrypting else password_decrypt(stored)
            cursor.execute(f"UPDATE {table} SET password = %s WHERE id = %s", [value, pk])  # noqa: S608


def encrypt_passwords(apps: Any, schema_editor: Any) -> None:
    _rewrite(apps, schema_editor, encrypting=True)


def decrypt_passwords(apps: Any, schema_editor: Any) -> None:
    _rewrite(apps, schema_editor, encrypting=False)


class Migration(migrations.Migration):
    dependencies = [
        ("tenants", "0004_tenant_password_encrypted_field"),
    ]

    operations = [
        migrations.RunPython(encrypt_passwords, decrypt_passwords),
    ]
