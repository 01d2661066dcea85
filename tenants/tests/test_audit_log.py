"""Every write is in the audit log, whichever road it took: the operator API, the admin, or a command."""

from __future__ import annotations

import getpass
import io
import json
import uuid

import pytest
from django.contrib.auth.models import User
from django.core.management import CommandError, call_command
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from m3saas.audit.models import AuditEntry
from tenants.models import ApiKey, Tenant

pytestmark = pytest.mark.django_db


@pytest.fixture
def api() -> APIClient:
    user = User.objects.create_user("api_op", password="pw-operator-123", is_staff=True)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
    return client


@pytest.fixture
def admin_client(client):
    client.force_login(User.objects.create_superuser("admin_op", "op@example.com", "pw-operator-123"))
    return client


def _entries(**lookup: object) -> list[AuditEntry]:
    return list(AuditEntry.objects.filter(**lookup))


def test_api_writes_are_audited_with_user_address_and_no_secret(api, make_tenant, drop_new_tenants):
    name = f"au{uuid.uuid4().hex[:12]}"
    body = {"name": name, "user": name, "password": "pw-visible-nowhere", "subscriptions": []}
    tenant = api.post("/operator/v1/tenants", body, format="json").json()
    key = api.post(f"/operator/v1/tenants/{tenant['id']}/keys", {"name": "ci"}, format="json").json()
    api.patch(f"/operator/v1/tenants/{tenant['id']}", {"rate_limit": "5/min"}, format="json")
    api.get(f"/operator/v1/tenants/{tenant['id']}")  # a read is not audited
    entries = _entries(source="api")
    assert [e.action for e in entries] == ["tenant.update", "apikey.create", "tenant.create"]
    assert {e.actor for e in entries} == {"api_op"}
    assert {e.address for e in entries} == {"127.0.0.1"}
    assert entries[2].target_id == str(tenant["id"]) and entries[1].target_id == key["id"]
    assert entries[0].detail == {"rate_limit": "5/min"}
    stored = json.dumps([e.detail for e in entries])
    assert "pw-visible-nowhere" not in stored and key["key"] not in stored


def test_the_audit_endpoint_lists_newest_first_and_paginates(api, make_tenant):
    tenant = make_tenant(provision=False)
    for name in ("first", "second", "third"):
        api.post(f"/operator/v1/tenants/{tenant.id}/keys", {"name": name}, format="json")
    page = api.get("/operator/v1/audit", {"page_size": 2}).json()
    assert page["count"] == 3 and page["next"]
    assert [e["detail"]["name"] for e in page["results"]] == ["third", "second"]
    assert page["results"][0]["actor"] == "api_op" and page["results"][0]["source"] == "api"
    assert api.get("/operator/v1/audit", {"source": "admin"}).json()["count"] == 0


def test_admin_adds_changes_and_deletes_are_audited(admin_client, settings):
    settings.AUTO_MIGRATION = False
    name = f"ad{uuid.uuid4().hex[:12]}"
    form = {
        "name": name,
        "user": name,
        "password": "pw-admin-secret",
        "per_day_backups": 1,
        "max_backups": 10,
        "rate_limit": "",
        "subscriptions-TOTAL_FORMS": 0,
        "subscriptions-INITIAL_FORMS": 0,
    }
    assert admin_client.post("/admin/tenants/tenant/add/", form).status_code == 302
    tenant = Tenant.objects.get(name=name)
    change = {**form, "password": "", "max_backups": 4}
    assert admin_client.post(f"/admin/tenants/tenant/{tenant.pk}/change/", change).status_code == 302
    assert admin_client.post(f"/admin/tenants/tenant/{tenant.pk}/delete/", {"post": "yes"}).status_code == 302
    entries = _entries(source="admin")
    assert [e.action for e in entries] == ["tenant.delete", "tenant.update", "tenant.create"]
    assert {(e.actor, e.target_id, e.address) for e in entries} == {("admin_op", str(tenant.pk), "127.0.0.1")}
    assert entries[1].detail == {"changed": [{"changed": {"fields": ["Max backups"]}}]}
    assert "pw-admin-secret" not in json.dumps([e.detail for e in entries])


def test_admin_key_revocation_is_audited(admin_client, make_tenant, tenant_key):
    tenant = make_tenant(provision=False)
    key_id = tenant_key(tenant).split("_")[1]
    admin_client.post("/admin/tenants/apikey/", {"action": "revoke", "_selected_action": [key_id]})
    assert [(e.action, e.target_id) for e in _entries(source="admin")] == [("apikey.revoke", key_id)]


def test_the_audit_log_is_readable_but_never_writable_in_the_admin(admin_client):
    entry = AuditEntry.objects.create(actor="x", source="api", action="tenant.create")
    assert admin_client.get("/admin/audit/auditentry/").status_code == 200
    assert admin_client.get(f"/admin/audit/auditentry/{entry.pk}/change/").status_code == 200
    assert admin_client.get("/admin/audit/auditentry/add/").status_code == 403
    assert admin_client.post(f"/admin/audit/auditentry/{entry.pk}/delete/", {"post": "yes"}).status_code == 403
    changed = admin_client.post(f"/admin/audit/auditentry/{entry.pk}/change/", {"actor": "mallory"})
    assert changed.status_code == 403
    bulk = admin_client.post(
        "/admin/audit/auditentry/", {"action": "delete_selected", "_selected_action": [entry.pk], "post": "yes"}
    )
    assert bulk.status_code in (200, 302)
    assert AuditEntry.objects.get(pk=entry.pk).actor == "x"


def test_commands_record_the_system_user(make_tenant):
    tenant = make_tenant(provision=False)
    out = io.StringIO()
    call_command("tenant_key", "create", tenant.name, "--name", "cron", stdout=out)
    key = out.getvalue().strip().splitlines()[-1]
    key_id = ApiKey.objects.get(tenant_id=tenant.id).pk
    call_command("tenant_key", "revoke", key_id, stdout=io.StringIO())
    entries = _entries(source="manage.py")
    assert [e.action for e in entries] == ["apikey.revoke", "apikey.create"]
    assert {e.actor for e in entries} == {getpass.getuser()}
    assert key not in json.dumps([e.detail for e in entries])


def test_a_writing_command_is_audited_with_its_options_and_outcome(make_tenant, settings, tmp_path):
    settings.BACKUP_DIR = tmp_path
    tenant = make_tenant()
    call_command("backup", "--tenant", tenant.name, stdout=io.StringIO())
    with pytest.raises(CommandError):
        call_command("backup", "--tenant", "nosuch", stdout=io.StringIO(), stderr=io.StringIO())
    failed, done = _entries(action="command.backup")
    assert (done.actor, done.source, done.detail["ok"], done.detail["options"]["tenant"]) == (
        getpass.getuser(),
        "manage.py",
        True,
        tenant.name,
    )
    assert (failed.detail["ok"], failed.detail["options"]["tenant"]) == (False, "nosuch")


def test_a_reading_command_is_not_audited(make_tenant):
    make_tenant(provision=False)
    call_command("migration_report", stdout=io.StringIO())
    assert not AuditEntry.objects.exists()


# --- every admin road -----------------------------------------------------------------------


def _admin_actions() -> list[tuple[str, str]]:
    return [(e.action, e.target_id) for e in AuditEntry.objects.filter(source="admin").order_by("id")]


def test_every_model_admin_that_can_write_is_audited(client):
    from django.contrib import admin
    from django.urls import reverse

    from m3saas.audit.admin import AuditedAdminMixin

    reverse("admin:index")  # the root URLconf, which wraps the admins other apps register
    unaudited = [
        model._meta.label
        for model, model_admin in admin.site._registry.items()
        if not isinstance(model_admin, AuditedAdminMixin) and model is not AuditEntry
    ]
    assert unaudited == []
    labels = {model._meta.label for model in admin.site._registry}
    assert {"auth.User", "auth.Group", "authtoken.TokenProxy", "subscriptions.Module"} <= labels


def test_module_and_dependency_admin_writes_are_audited(admin_client):
    from subscriptions.models import Module, ModuleDependency

    inline = {"dependencies-TOTAL_FORMS": 0, "dependencies-INITIAL_FORMS": 0}
    assert admin_client.post("/admin/subscriptions/module/add/", {"name": "tags", **inline}).status_code == 302
    tags = Module.objects.get(name="tags")
    assert admin_client.post("/admin/subscriptions/module/add/", {"name": "notes", **inline}).status_code == 302
    notes = Module.objects.get(name="notes")
    made = admin_client.post(
        "/admin/subscriptions/moduledependency/add/", {"module": notes.pk, "dependency": tags.pk, "version": 1}
    )
    assert made.status_code == 302, made.content.decode()[:2000]
    dependency = ModuleDependency.objects.get()
    assert (
        admin_client.post(f"/admin/subscriptions/module/{tags.pk}/change/", {"name": "tags", **inline}).status_code
        == 302
    )
    deleted = admin_client.post(
        "/admin/subscriptions/moduledependency/",
        {"action": "delete_selected", "_selected_action": [dependency.pk], "post": "yes"},
    )
    assert deleted.status_code == 302
    assert _admin_actions() == [
        ("module.create", str(tags.pk)),
        ("module.create", str(notes.pk)),
        ("moduledependency.create", str(dependency.pk)),
        ("module.update", str(tags.pk)),
        ("moduledependency.delete", str(dependency.pk)),
    ]


def test_subscription_admin_writes_and_bulk_deletion_are_audited(admin_client, make_tenant, settings):
    from subscriptions.models import Module, Subscription

    settings.AUTO_MIGRATION = False
    tenant = make_tenant(modules=[], provision=False)
    module = Module.objects.get_or_create(name="test")[0]
    made = admin_client.post(
        "/admin/subscriptions/subscription/add/", {"tenant": tenant.id, "module": module.pk, "version": 1}
    )
    assert made.status_code == 302, made.content.decode()[:2000]
    subscription = Subscription.objects.get(tenant_id=tenant.id)
    admin_client.post(
        "/admin/subscriptions/subscription/",
        {"action": "delete_selected", "_selected_action": [subscription.pk], "post": "yes"},
    )
    assert not Subscription.objects.exists()
    assert _admin_actions() == [
        ("subscription.create", str(subscription.pk)),
        ("subscription.delete", str(subscription.pk)),
    ]


def test_admin_actions_migrate_and_move_major_version_are_audited(admin_client, make_tenant):
    from subscriptions.models import Subscription

    tenant = make_tenant(modules=[("test", 1)])
    admin_client.post("/admin/tenants/tenant/", {"action": "migrate_now", "_selected_action": [tenant.id]})
    subscription = Subscription.objects.get(tenant_id=tenant.id)
    moved = admin_client.post(
        "/admin/subscriptions/subscription/",
        {"action": "move_major_version", "_selected_action": [subscription.pk], "apply": "1", "to_version": 2},
    )
    assert moved.status_code == 302
    assert Subscription.objects.get(pk=subscription.pk).version == 2
    assert _admin_actions() == [("tenant.migrate", str(tenant.id)), ("subscription.upgrade", str(subscription.pk))]
    upgrade = AuditEntry.objects.get(action="subscription.upgrade")
    assert upgrade.detail == {"to_version": 2, "ok": True} and upgrade.actor == "admin_op"


def test_a_subscription_added_inline_on_the_tenant_page_is_in_its_audit_entry(admin_client, make_tenant, settings):
    from subscriptions.models import Module

    settings.AUTO_MIGRATION = False
    tenant = make_tenant(modules=[], provision=False)
    module = Module.objects.get_or_create(name="test")[0]
    form = {
        "password": "",
        "per_day_backups": 1,
        "max_backups": 10,
        "rate_limit": "",
        "subscriptions-TOTAL_FORMS": 1,
        "subscriptions-INITIAL_FORMS": 0,
        "subscriptions-0-module": module.pk,
        "subscriptions-0-version": 1,
    }
    assert admin_client.post(f"/admin/tenants/tenant/{tenant.id}/change/", form).status_code == 302
    (entry,) = AuditEntry.objects.filter(source="admin")
    assert entry.action == "tenant.update"
    (added,) = entry.detail["changed"]
    assert added["added"]["name"] == "subscription" and added["added"]["object"].endswith("→ test v1")


def test_key_and_run_deletions_and_key_creation_in_the_admin_are_audited(admin_client, make_tenant, tenant_key):
    from tenants.models import TenantMigrationRun

    tenant = make_tenant(provision=False)
    made = admin_client.post(
        "/admin/tenants/apikey/add/",
        {"tenant": tenant.id, "name": "k", "modules": "", "rate_limit": "", "expires_at_0": "", "expires_at_1": ""},
    )
    assert made.status_code == 200
    key = ApiKey.objects.get()
    run = TenantMigrationRun.objects.create(tenant_id=tenant.id, status="failed", error="x")
    admin_client.post(
        "/admin/tenants/apikey/", {"action": "delete_selected", "_selected_action": [key.pk], "post": "yes"}
    )
    admin_client.post(f"/admin/tenants/tenantmigrationrun/{run.pk}/delete/", {"post": "yes"})
    assert not ApiKey.objects.exists() and not TenantMigrationRun.objects.exists()
    assert _admin_actions() == [
        ("apikey.create", key.pk),
        ("apikey.delete", key.pk),
        ("tenantmigrationrun.delete", str(run.pk)),
    ]


def test_users_and_tokens_made_in_the_admin_are_audited_without_the_token(admin_client):
    made = admin_client.post(
        "/admin/auth/user/add/",
        {
            "username": "new_operator",
            "password1": "pw-Xy7-long-enough",
            "password2": "pw-Xy7-long-enough",
            "usable_password": "true",
        },
    )
    assert made.status_code == 302, made.content.decode()[:3000]
    user = User.objects.get(username="new_operator")
    token = admin_client.post("/admin/authtoken/tokenproxy/add/", {"user": user.pk})
    assert token.status_code == 302, token.content.decode()[:3000]
    key = Token.objects.get(user=user).key
    assert _admin_actions() == [("user.create", str(user.pk)), ("tokenproxy.create", str(user.pk))]
    assert key not in json.dumps(list(AuditEntry.objects.values()), default=str)
