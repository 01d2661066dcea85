"""`/migrate…` and `/{tenant_id}/migrate…`: operators only; 204 on success, a JSON error otherwise."""

from __future__ import annotations

import json

import pytest
from django.contrib.auth.models import User
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from m3saas.bookkeeping.models import SeedRecord
from m3saas.engines import engine
from modules.test.v1.models import Animal
from subscriptions.models import Module
from tenants.models import TenantMigrationRun
from tenants.tests.helpers import break_tenant, tables

pytestmark = pytest.mark.django_db


@pytest.fixture
def master_seeds(tmp_path, settings):
    """A master seed file of our own, so the real demo tenants are never created here."""
    (tmp_path / "01_modules.json").write_text(
        json.dumps({"model": "subscriptions.module", "main": [{"id": 9001, "name": "seeded_zoo"}]})
    )
    settings.MASTER_SEEDS_DIR = tmp_path
    settings.AUTO_MIGRATION = False


def token_client(*, staff: bool) -> APIClient:
    user = User.objects.create_user(f"user_{staff}", password="pw-operator-123", is_staff=staff)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
    return client


@pytest.fixture
def operator() -> APIClient:
    return token_client(staff=True)


def names(alias: str) -> list[str]:
    return sorted(Animal.objects.using(alias).values_list("name", flat=True))


@pytest.mark.parametrize("method", ["get", "post"])
@pytest.mark.parametrize("suffix", ["", "/force", "/seed", "/deseed"])
def test_anonymous_tenant_migrate_is_401_and_nothing_runs(make_tenant, method, suffix):
    tenant = make_tenant(provision=False)
    response = getattr(APIClient(), method)(f"/{tenant.id}/migrate{suffix}")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "not_authenticated"
    assert response["WWW-Authenticate"] == "Token"
    assert not engine().database_exists(tenant)
    assert not TenantMigrationRun.objects.exists()


@pytest.mark.parametrize("method", ["get", "post"])
def test_anonymous_master_migrate_is_401_and_nothing_changes(master_seeds, method):
    response = getattr(APIClient(), method)("/migrate")
    assert response.status_code == 401
    assert not Module.objects.filter(name="seeded_zoo").exists()
    assert not SeedRecord.objects.exists()


def test_a_wrong_token_is_401(make_tenant):
    tenant = make_tenant(provision=False)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Token not-a-real-token")
    assert client.get(f"/{tenant.id}/migrate").status_code == 401
    assert not engine().database_exists(tenant)


def test_a_non_staff_token_is_403_and_nothing_runs(make_tenant, master_seeds):
    tenant = make_tenant(provision=False)
    client = token_client(staff=False)
    assert client.get(f"/{tenant.id}/migrate").status_code == 403
    response = client.post("/migrate")
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "permission_denied"
    assert not engine().database_exists(tenant)
    assert not Module.objects.filter(name="seeded_zoo").exists()


def test_a_non_staff_session_is_403(client, make_tenant):
    tenant = make_tenant(provision=False)
    client.force_login(User.objects.create_user("someone", password="pw-someone-123"))
    assert client.post(f"/{tenant.id}/migrate").status_code == 403
    assert not engine().database_exists(tenant)


def test_staff_token_migrates_and_seeds_a_tenant(operator, make_tenant):
    tenant = make_tenant(provision=False)
    response = operator.get(f"/{tenant.id}/migrate")
    assert response.status_code == 204
    assert response.content == b""
    assert "test_v1_animal" in tables(tenant.alias)
    assert names(tenant.alias) == ["cat", "dog", "owl"]
    run = TenantMigrationRun.objects.get(tenant_id=tenant.id)
    assert (run.trigger, run.status, run.seeded) == ("http", "ok", True)


def test_staff_session_migrates_a_tenant_with_post(client, make_tenant):
    tenant = make_tenant(provision=False)
    client.force_login(User.objects.create_user("staff", password="pw-staff-123", is_staff=True))
    assert client.post(f"/{tenant.id}/migrate").status_code == 204
    assert "test_v1_animal" in tables(tenant.alias)


@pytest.mark.parametrize("path", ["/migrate/force", "/{id}/migrate/deseed"])
def test_staff_session_get_runs_nothing_a_link_could_trigger(client, make_tenant, path):
    tenant = make_tenant(provision=False)
    client.force_login(User.objects.create_user("staff", password="pw-staff-123", is_staff=True))
    assert client.get(path.format(id=tenant.id)).status_code == 401
    assert not engine().database_exists(tenant)


def test_staff_session_post_without_csrf_token_is_refused(make_tenant):
    tenant = make_tenant(provision=False)
    client = APIClient(enforce_csrf_checks=True)
    client.force_login(User.objects.create_user("staff", password="pw-staff-123", is_staff=True))
    assert client.post(f"/{tenant.id}/migrate").status_code == 403
    assert not engine().database_exists(tenant)


def test_seed_then_deseed_a_tenant_keeps_the_users_rows(operator, make_tenant):
    tenant = make_tenant()
    assert operator.post(f"/{tenant.id}/migrate").status_code == 204
    Animal.objects.using(tenant.alias).create(name="users-own")
    assert operator.post(f"/{tenant.id}/migrate/seed").status_code == 204
    assert "temporary mouse" in names(tenant.alias)
    assert operator.post(f"/{tenant.id}/migrate/deseed").status_code == 204
    assert names(tenant.alias) == ["cat", "dog", "owl", "users-own"]


def test_migrate_keeps_an_edited_main_seed_and_force_restores_it(operator, make_tenant):
    tenant = make_tenant()
    assert operator.get(f"/{tenant.id}/migrate").status_code == 204
    Animal.objects.using(tenant.alias).filter(name="cat").update(name="tiger")
    assert operator.get(f"/{tenant.id}/migrate").status_code == 204
    assert "tiger" in names(tenant.alias)
    assert operator.get(f"/{tenant.id}/migrate/force").status_code == 204
    assert names(tenant.alias) == ["cat", "dog", "owl"]


def test_master_migrate_applies_the_master_seeds(operator, master_seeds):
    response = operator.get("/migrate")
    assert response.status_code == 204
    assert Module.objects.filter(pk=9001, name="seeded_zoo").exists()


def test_unknown_tenant_is_404_json(operator):
    response = operator.get("/987654/migrate")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "tenant_not_found"


def test_unknown_action_is_404_json(operator, make_tenant):
    tenant = make_tenant(provision=False)
    response = operator.get(f"/{tenant.id}/migrate/everything")
    assert response.status_code == 404
    assert not engine().database_exists(tenant)


def test_a_failing_tenant_migration_is_a_json_500_and_recorded(operator, make_tenant):
    tenant = make_tenant(provision=False)
    break_tenant(tenant)
    response = operator.get(f"/{tenant.id}/migrate")
    assert response.status_code == 500
    error = response.json()["error"]
    assert error["code"] == "tenant_migration_failed"
    assert tenant.name in error["message"]
    assert TenantMigrationRun.objects.get(tenant_id=tenant.id).status == "failed"
