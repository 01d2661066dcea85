"""Tenant passwords at rest: the master holds only tokens, no page shows a password, keys rotate."""

from __future__ import annotations

import dataclasses
import importlib
import json
import pickle
import uuid
from io import StringIO
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from django.contrib.auth.models import User
from django.core.management import CommandError, call_command
from django.db import connection
from rest_framework.test import APIClient

from m3saas.engines import tenant_db_password
from m3saas.passwords import PasswordKeyError, is_password_token, password_decrypt
from m3saas.seeding.runner import seeds_apply
from tenants.models import Tenant
from tenants.selectors import tenant_info_get
from tenants.services import tenant_create

pytestmark = [pytest.mark.django_db, pytest.mark.module_apis_public]

CLEAR = "clear-text-tenant-password-7f3a"


def unique_name() -> str:
    return f"t{uuid.uuid4().hex[:12]}"


def stored_row(tenant_id: int) -> str:
    """The tenant's master row as a dump would have it: every column, read with plain SQL."""
    table = connection.ops.quote_name(Tenant._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT * FROM {table} WHERE id = %s", [tenant_id])
        return " ".join(str(value) for value in cursor.fetchone())


def use_keys(settings, *keys: str) -> None:
    settings.M3SAAS_CONFIG = dataclasses.replace(settings.M3SAAS_CONFIG, password_keys=keys)


@pytest.fixture
def operator(client):
    client.force_login(User.objects.create_superuser("operator", "op@example.com", "pw-operator-123"))
    return client


# --- what the master holds ------------------------------------------------------------------


def test_the_master_row_holds_neither_the_password_nor_the_database_password():
    name = unique_name()
    tenant = tenant_create(name=name, user=name, password=CLEAR, provision=False)
    row = stored_row(tenant.id)
    assert CLEAR not in row
    assert tenant_db_password(tenant.password) not in row
    dump = StringIO()
    call_command("dumpdata", "tenants.tenant", stdout=dump)
    assert name in dump.getvalue()
    assert CLEAR not in dump.getvalue()
    assert password_decrypt(Tenant.objects.get(pk=tenant.id).password) == CLEAR


def test_every_way_of_writing_a_password_stores_it_encrypted(tmp_path: Path):
    by_orm = Tenant.objects.create(name=unique_name(), user=unique_name(), password=CLEAR)
    updated = Tenant.objects.create(name=unique_name(), user=unique_name(), password="first")
    Tenant.objects.filter(pk=updated.pk).update(password=CLEAR)
    seeded_id = 880_000 + uuid.uuid4().int % 10_000
    seed = tmp_path / "01_tenants.json"
    record = {"id": seeded_id, "name": unique_name(), "user": unique_name(), "password": CLEAR}
    seed.write_text(json.dumps({"model": "tenants.tenant", "main": [record]}))
    seeds_apply(files=[seed])
    for pk in (by_orm.pk, updated.pk, seeded_id):
        assert CLEAR not in stored_row(pk)
        assert password_decrypt(Tenant.objects.get(pk=pk).password) == CLEAR


def test_a_forced_seed_with_the_same_password_changes_nothing(tmp_path: Path):
    seed, pk, name = tmp_path / "01_tenants.json", 881_000 + uuid.uuid4().int % 10_000, unique_name()
    record = {"id": pk, "name": name, "user": name, "password": CLEAR}
    seed.write_text(json.dumps({"model": "tenants.tenant", "main": [record]}))
    seeds_apply(files=[seed])
    Tenant.objects.filter(pk=pk).update(schema_state=Tenant.SchemaState.READY)
    token = Tenant.objects.get(pk=pk).password
    assert seeds_apply(files=[seed], force=True).updated == 0
    row = Tenant.objects.get(pk=pk)
    assert (row.password, row.schema_state) == (token, Tenant.SchemaState.READY)


def test_cached_tenant_reads_carry_only_the_encrypted_password():
    name = unique_name()
    tenant = tenant_create(name=name, user=name, password=CLEAR, provision=False)
    cached = tenant_info_get(tenant_id=tenant.id)
    assert is_password_token(cached.password)
    assert CLEAR.encode() not in pickle.dumps(cached)


def test_the_data_migration_encrypts_clear_rows_and_its_reverse_decrypts_them():
    from django.apps import apps

    migration = importlib.import_module("tenants.migrations.0005_tenant_password_encrypt_rows")
    tenant = Tenant.objects.create(name=unique_name(), user=unique_name(), password="x")
    table = connection.ops.quote_name(Tenant._meta.db_table)
    with connection.cursor() as cursor:  # a row as it was before this release
        cursor.execute(f"UPDATE {table} SET password = %s WHERE id = %s", [CLEAR, tenant.pk])
    editor = connection.schema_editor()
    migration.encrypt_passwords(apps, editor)
    assert CLEAR not in stored_row(tenant.pk)
    assert password_decrypt(Tenant.objects.get(pk=tenant.pk).password) == CLEAR
    migration.decrypt_passwords(apps, editor)
    assert Tenant.objects.get(pk=tenant.pk).password == CLEAR


# --- the admin --------------------------------------------------------------------------------


def admin_change(operator, tenant_id: int, password: str):
    return operator.post(
        f"/admin/tenants/tenant/{tenant_id}/change/",
        {
            "password": password,
            "per_day_backups": 1,
            "max_backups": 10,
            "subscriptions-TOTAL_FORMS": 0,
            "subscriptions-INITIAL_FORMS": 0,
        },
    )


def test_no_admin_page_shows_the_password(operator, settings):
    settings.AUTO_MIGRATION = False
    name = unique_name()
    tenant = tenant_create(name=name, user=name, password=CLEAR, provision=False)
    token = Tenant.objects.get(pk=tenant.id).password
    for url in ("/admin/tenants/tenant/", f"/admin/tenants/tenant/{tenant.id}/change/", "/admin/tenants/tenant/add/"):
        page = operator.get(url)
        assert page.status_code == 200, url
        html = page.content.decode()
        assert CLEAR not in html, url
        assert token not in html, url
    assert 'type="password"' in operator.get(f"/admin/tenants/tenant/{tenant.id}/change/").content.decode()


@pytest.fixture
def ready_tenant(settings) -> Tenant:
    """A tenant whose password is `CLEAR` and whose database is up to date (AUTO_MIGRATION off)."""
    settings.AUTO_MIGRATION = False
    name = unique_name()
    tenant = tenant_create(name=name, user=name, password=CLEAR, provision=False)
    Tenant.objects.filter(pk=tenant.id).update(schema_state=Tenant.SchemaState.READY)
    return tenant


def test_an_empty_admin_password_keeps_the_current_one(operator, ready_tenant):
    tenant = ready_tenant
    assert admin_change(operator, tenant.id, "").status_code == 302
    row = Tenant.objects.get(pk=tenant.id)
    assert password_decrypt(row.password) == CLEAR
    assert row.schema_state == Tenant.SchemaState.READY


def test_a_new_admin_password_is_stored_encrypted_and_reprovisions(operator, ready_tenant):
    tenant = ready_tenant
    assert admin_change(operator, tenant.id, "a-new-password").status_code == 302
    row = Tenant.objects.get(pk=tenant.id)
    assert "a-new-password" not in stored_row(tenant.id)
    assert password_decrypt(row.password) == "a-new-password"
    assert row.schema_state == Tenant.SchemaState.PENDING


def test_a_new_tenant_needs_a_password_in_the_admin(operator, settings):
    settings.AUTO_MIGRATION = False
    name = unique_name()
    form = {"name": name, "user": name, "password": "", "per_day_backups": 1, "max_backups": 10}
    form |= {"subscriptions-TOTAL_FORMS": 0, "subscriptions-INITIAL_FORMS": 0}
    response = operator.post("/admin/tenants/tenant/add/", form)
    assert response.status_code == 200
    assert "A new tenant needs a password." in response.content.decode()
    assert not Tenant.objects.filter(name=name).exists()


# --- keys -------------------------------------------------------------------------------------


def test_a_rotated_tenant_keeps_working(make_tenant, settings):
    settings.AUTO_MIGRATION = True
    old_key, new_key = settings.M3SAAS_CONFIG.password_keys[0], Fernet.generate_key().decode()
    tenant = make_tenant()
    client = APIClient()
    assert client.get(f"/{tenant.id}/test/v1/animals").status_code == 200
    use_keys(settings, new_key, old_key)
    out = StringIO()
    call_command("tenant_passwords_rotate", stdout=out)
    assert "Re-encrypted 1 tenant password(s)" in out.getvalue()
    use_keys(settings, new_key)  # the old key has left the config
    row = Tenant.objects.get(pk=tenant.id)
    assert row.password != tenant.password
    assert row.schema_state == Tenant.SchemaState.READY  # same clear password: nothing to redo
    assert client.get(f"/{tenant.id}/test/v1/animals").status_code == 200
    assert client.post(f"/{tenant.id}/test/v1/animals", {"name": "rotated"}, format="json").status_code == 201
    if settings.M3SAAS_CONFIG.is_mysql:
        import MySQLdb

        db = settings.M3SAAS_CONFIG.database
        MySQLdb.connect(
            host=db.host, port=db.port, user=row.user, password=tenant_db_password(row.password), database=row.name
        ).close()


def test_rotation_with_a_password_no_key_opens_fails_in_one_line_and_changes_nothing(make_tenant, settings):
    tenant = make_tenant(provision=False)
    use_keys(settings, Fernet.generate_key().decode())  # the key that encrypted it is gone
    with pytest.raises(CommandError) as error:
        call_command("tenant_passwords_rotate")
    message = str(error.value)
    assert "\n" not in message
    assert f"Tenant {tenant.name} (#{tenant.id})" in message
    assert "tenantPasswordKeys" in message
    assert Tenant.objects.get(pk=tenant.id).password == tenant.password


@pytest.mark.mariadb
def test_a_request_to_a_tenant_whose_key_is_gone_is_a_503_in_the_json_shape(make_tenant, settings):
    from m3saas.tenancy.connections import tenant_connection_unregister

    tenant = make_tenant()
    tenant_connection_unregister(tenant.alias)
    use_keys(settings, Fernet.generate_key().decode())
    response = APIClient().get(f"/{tenant.id}/test/v1/animals")
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "tenant_password_unreadable"


def test_without_keys_a_password_cannot_be_stored_and_the_error_names_the_file_and_key(settings):
    settings.M3SAAS_CONFIG = dataclasses.replace(settings.M3SAAS_CONFIG, source="/etc/m3saas.json", password_keys=())
    with pytest.raises(PasswordKeyError) as error:
        tenant_create(name=unique_name(), user=unique_name(), password=CLEAR, provision=False)
    message = error.value.message
    assert "\n" not in message
    assert message.startswith("/etc/m3saas.json: key 'tenantPasswordKeys' is missing")
    assert not Tenant.objects.exists()


@pytest.mark.mariadb
def test_a_tenant_whose_password_no_key_opens_fails_alone_in_a_run_over_all_tenants(make_tenant):
    """One line for that tenant; every other tenant is still migrated."""
    from m3saas.tenancy.connections import tenant_connection_unregister

    unreadable, fine = make_tenant(provision=False), make_tenant(provision=False)
    foreign = Fernet(Fernet.generate_key()).encrypt(b"someone else's").decode()
    Tenant.objects.filter(pk=unreadable.id).update(password=foreign)
    tenant_connection_unregister(unreadable.alias)
    out, err = StringIO(), StringIO()
    with pytest.raises(CommandError):
        call_command("migrate_tenants", stdout=out, stderr=err)
    assert Tenant.objects.get(pk=fine.id).schema_state == Tenant.SchemaState.READY
    assert Tenant.objects.get(pk=unreadable.id).schema_state == Tenant.SchemaState.FAILED
    assert "Traceback" not in out.getvalue() + err.getvalue()
    assert f"{unreadable.name}: FAILED" in out.getvalue() + err.getvalue(), (out.getvalue(), err.getvalue())
