"""`manage.py mqtt_credentials`: one `<tenant name>/#`-scoped broker user per tenant in credentials.xml."""

from __future__ import annotations

import shutil
import xml.etree.ElementTree as ET
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command

from m3saas.mqtt.credentials import TENANT_ROLE, mqtt_password_verify, mqtt_tenant_password
from tenants.management.commands.mqtt_credentials import DEFAULT_FILE
from tenants.models import Tenant
from tenants.selectors import tenant_info_from_row


def users_of(path: Path) -> dict[str, ET.Element]:
    return {u.findtext("name") or "": u for u in ET.parse(path).getroot().findall("users/user")}  # noqa: S314


def password_of(path: Path, name: str) -> str:
    return users_of(path)[name].findtext("password") or ""


@pytest.fixture
def credentials(tmp_path: Path) -> Path:
    path = tmp_path / "credentials.xml"
    shutil.copy(DEFAULT_FILE, path)
    return path


def run_credentials(path: Path, *args: str) -> str:
    out = StringIO()
    call_command("mqtt_credentials", "--file", str(path), "--iterations", "100", *args, stdout=out, stderr=out)
    return out.getvalue()


@pytest.mark.django_db
def test_credentials_get_one_scoped_user_per_tenant(credentials, make_tenant):
    first, second = make_tenant(provision=False), make_tenant(provision=False)
    run_credentials(credentials)
    users = users_of(credentials)
    for tenant in (first, second):
        user = users[tenant.name]
        assert [r.text for r in user.findall("roles/id")] == [TENANT_ROLE]
        password = mqtt_tenant_password(tenant=tenant)
        assert mqtt_password_verify(password=password, encoded=user.findtext("password") or "")


@pytest.mark.django_db
def test_credentials_keep_users_and_roles_they_did_not_create(credentials, make_tenant):
    make_tenant(provision=False)
    run_credentials(credentials)
    root = ET.parse(credentials).getroot()  # noqa: S314
    assert mqtt_password_verify(password="passs", encoded=users_of(credentials)["app_user"].findtext("password") or "")
    assert {r.findtext("id") for r in root.findall("roles/role")} == {TENANT_ROLE, "superuser"}


@pytest.mark.django_db
def test_credentials_run_twice_leaves_the_file_unchanged(credentials, make_tenant):
    make_tenant(provision=False)
    run_credentials(credentials)
    before = credentials.read_bytes()
    assert "already up to date" in run_credentials(credentials)
    assert credentials.read_bytes() == before


@pytest.mark.django_db
def test_credentials_follow_a_changed_tenant_password(credentials, make_tenant):
    tenant = make_tenant(provision=False)
    run_credentials(credentials)
    row = Tenant.objects.get(pk=tenant.id)
    row.password = "changed"
    row.save(update_fields=["password"])
    assert f"updated: {tenant.name}" in run_credentials(credentials)
    new_password = mqtt_tenant_password(tenant=tenant_info_from_row(row))
    assert mqtt_password_verify(password=new_password, encoded=password_of(credentials, tenant.name))


@pytest.mark.django_db
def test_credentials_remove_the_user_of_a_deleted_tenant(credentials, make_tenant):
    kept, gone = make_tenant(provision=False), make_tenant(provision=False)
    run_credentials(credentials)
    Tenant.objects.filter(pk=gone.id).delete()
    run_credentials(credentials)
    assert set(users_of(credentials)) == {"app_user", kept.name}


@pytest.mark.django_db
def test_credentials_never_replace_a_user_they_did_not_create(credentials, make_tenant):
    tenant = make_tenant(provision=False)
    text = credentials.read_text().replace(
        "<users>",
        f"<users><user><name>{tenant.name}</name><password>kept</password><roles><id>superuser</id></roles></user>",
    )
    credentials.write_text(text)
    output = run_credentials(credentials)
    assert f"skipped {tenant.name}" in output
    assert users_of(credentials)[tenant.name].findtext("password") == "kept"


@pytest.mark.django_db
def test_credentials_from_the_tenant_password(credentials, make_tenant):
    tenant = make_tenant(provision=False, password="tenant-pass")
    run_credentials(credentials, "--password-from", "tenant")
    assert mqtt_password_verify(password="tenant-pass", encoded=password_of(credentials, tenant.name))


@pytest.mark.django_db
def test_credentials_create_a_missing_file(tmp_path, make_tenant):
    tenant = make_tenant(provision=False)
    path = tmp_path / "new" / "credentials.xml"
    run_credentials(path)
    assert set(users_of(path)) == {tenant.name}
    roles = ET.parse(path).getroot().findall("roles/role")  # noqa: S314
    assert [r.findtext("id") for r in roles] == [TENANT_ROLE]
