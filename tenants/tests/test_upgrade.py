"""`upgrade_subscription`: a tenant's data moves to a new major version, or nothing changes."""

from __future__ import annotations

import io

import pytest
from django.core.management import CommandError, call_command
from django.db import connections
from rest_framework.test import APIClient

import modules.test.v2.upgrade as test_v2_upgrade
from modules.test.v1.models import Animal as AnimalV1
from modules.test.v2.models import Animal as AnimalV2
from subscriptions.models import Subscription

pytestmark = [pytest.mark.django_db, pytest.mark.module_apis_public]


def version_of(tenant) -> int:
    return Subscription.objects.get(tenant_id=tenant.id, module__name="test").version


def tables(alias: str) -> set[str]:
    with connections[alias].cursor() as cursor:
        return set(connections[alias].introspection.table_names(cursor, include_views=True))


def v1_rows(tenant) -> list[tuple[int, str]]:
    return list(AnimalV1.objects.using(tenant.alias).order_by("id").values_list("id", "name"))


@pytest.fixture
def tenant_on_v1(make_tenant):
    tenant = make_tenant(modules=[("test", 1)])
    for name in ["cat", "dog", "Owl"]:
        AnimalV1.objects.using(tenant.alias).create(name=name)
    return tenant


def test_upgrade_carries_animals_from_v1_to_v2(tenant_on_v1):
    before = v1_rows(tenant_on_v1)
    call_command("upgrade_subscription", tenant_on_v1.name, "test", "2", stdout=(out := io.StringIO()))
    assert version_of(tenant_on_v1) == 2
    moved = list(AnimalV2.objects.using(tenant_on_v1.alias).order_by("id").values_list("id", "name", "species"))
    assert moved == [(pk, name, "") for pk, name in before]
    assert "OK" in out.getvalue()


def test_after_the_switch_v2_serves_the_moved_animals_and_v1_is_404(tenant_on_v1):
    client = APIClient()
    call_command("upgrade_subscription", str(tenant_on_v1.id), "test", "2")
    response = client.get(f"/{tenant_on_v1.id}/test/v2/animals")
    assert response.status_code == 200
    assert {"cat", "dog", "Owl"} <= {a["name"] for a in response.json()}
    stats = {row["letter"]: row["animals"] for row in client.get(f"/{tenant_on_v1.id}/test/v2/animal-stats").json()}
    assert stats["C"] >= 1 and stats["D"] >= 1 and stats["O"] >= 1
    assert client.get(f"/{tenant_on_v1.id}/test/v1/animals").status_code == 404


def test_old_tables_are_kept_without_drop_old(tenant_on_v1):
    before = v1_rows(tenant_on_v1)
    call_command("upgrade_subscription", tenant_on_v1.name, "test", "2")
    assert {"test_v1_animal", "test_v2_animal", "test_v2_animal_stats"} <= tables(tenant_on_v1.alias)
    assert v1_rows(tenant_on_v1) == before


def test_drop_old_removes_the_v1_tables_and_keeps_v2(tenant_on_v1, settings, tmp_path):
    settings.BACKUP_DIR = str(tmp_path)
    count = len(v1_rows(tenant_on_v1))
    call_command("upgrade_subscription", tenant_on_v1.name, "test", "2", "--drop-old", "--noinput")
    assert "test_v1_animal" not in tables(tenant_on_v1.alias)
    assert AnimalV2.objects.using(tenant_on_v1.alias).count() == count
    assert version_of(tenant_on_v1) == 2


def test_failing_data_step_leaves_the_tenant_on_v1_with_its_rows(tenant_on_v1, monkeypatch):
    before = v1_rows(tenant_on_v1)

    def broken(*, alias: str, from_version: int) -> None:
        AnimalV2.objects.using(alias).create(name="half-copied")
        AnimalV1.objects.using(alias).update(name="overwritten")
        raise RuntimeError("data step broke")

    monkeypatch.setattr(test_v2_upgrade, "upgrade", broken)
    with pytest.raises(CommandError):
        call_command("upgrade_subscription", tenant_on_v1.name, "test", "2", stderr=(err := io.StringIO()))
    assert "data step broke" in err.getvalue()
    assert "still on v1" in err.getvalue()
    assert version_of(tenant_on_v1) == 1
    assert v1_rows(tenant_on_v1) == before
    assert not AnimalV2.objects.using(tenant_on_v1.alias).filter(name="half-copied").exists()
    response = APIClient().get(f"/{tenant_on_v1.id}/test/v1/animals")
    assert response.status_code == 200
    assert [(a["id"], a["name"]) for a in response.json()] == before


def test_a_rerun_after_a_failure_completes_the_move(tenant_on_v1, monkeypatch):
    before = v1_rows(tenant_on_v1)
    real = test_v2_upgrade.upgrade

    def broken(*, alias: str, from_version: int) -> None:
        raise RuntimeError("not today")

    monkeypatch.setattr(test_v2_upgrade, "upgrade", broken)
    with pytest.raises(CommandError):
        call_command("upgrade_subscription", tenant_on_v1.name, "test", "2", stderr=io.StringIO())
    monkeypatch.setattr(test_v2_upgrade, "upgrade", real)
    call_command("upgrade_subscription", tenant_on_v1.name, "test", "2")
    assert version_of(tenant_on_v1) == 2
    assert list(AnimalV2.objects.using(tenant_on_v1.alias).order_by("id").values_list("id", "name")) == before


def test_requests_during_the_move_are_served_by_v1(tenant_on_v1, monkeypatch):
    client = APIClient()
    seen: list[tuple[int, int]] = []
    real = test_v2_upgrade.upgrade

    def watching(*, alias: str, from_version: int) -> None:
        real(alias=alias, from_version=from_version)
        seen.append(
            (
                client.get(f"/{tenant_on_v1.id}/test/v1/animals").status_code,
                client.get(f"/{tenant_on_v1.id}/test/v2/animals").status_code,
            )
        )

    monkeypatch.setattr(test_v2_upgrade, "upgrade", watching)
    call_command("upgrade_subscription", tenant_on_v1.name, "test", "2")
    assert seen == [(200, 404)]
    assert client.get(f"/{tenant_on_v1.id}/test/v2/animals").status_code == 200


def test_all_tenants_carries_on_past_a_failure(make_tenant, monkeypatch):
    good = make_tenant(modules=[("test", 1)])
    bad = make_tenant(modules=[("test", 1)])
    AnimalV1.objects.using(good.alias).create(name="good-cat")
    AnimalV1.objects.using(bad.alias).create(name="bad-cat")
    bad_before = v1_rows(bad)
    real = test_v2_upgrade.upgrade

    def fails_for_bad(*, alias: str, from_version: int) -> None:
        if alias == bad.alias:
            raise RuntimeError("bad tenant")
        real(alias=alias, from_version=from_version)

    monkeypatch.setattr(test_v2_upgrade, "upgrade", fails_for_bad)
    out, err = io.StringIO(), io.StringIO()
    with pytest.raises(CommandError, match=bad.name):
        call_command("upgrade_subscription", "--all-tenants", "test", "2", stdout=out, stderr=err)
    assert version_of(good) == 2
    assert version_of(bad) == 1
    assert AnimalV2.objects.using(good.alias).filter(name="good-cat").exists()
    assert v1_rows(bad) == bad_before
    assert good.name in out.getvalue() and bad.name in err.getvalue()


@pytest.mark.parametrize(
    ("version", "message"),
    [("9", "no version v9"), ("1.1", "not a major version"), ("0", "not a major version")],
)
def test_unknown_or_malformed_version_is_refused(tenant_on_v1, version, message):
    before = v1_rows(tenant_on_v1)
    with pytest.raises(CommandError, match=message if version != "9" else "1 tenant"):
        call_command("upgrade_subscription", tenant_on_v1.name, "test", version, stderr=(err := io.StringIO()))
    if version == "9":
        assert message in err.getvalue()
    assert version_of(tenant_on_v1) == 1
    assert v1_rows(tenant_on_v1) == before


def test_moving_back_is_refused(make_tenant):
    tenant = make_tenant(modules=[("test", 2)])
    with pytest.raises(CommandError):
        call_command("upgrade_subscription", tenant.name, "test", "1", stderr=(err := io.StringIO()))
    assert "not supported" in err.getvalue()
    assert version_of(tenant) == 2


def test_a_tenant_without_the_module_is_refused(make_tenant):
    tenant = make_tenant(modules=[])
    with pytest.raises(CommandError):
        call_command("upgrade_subscription", tenant.name, "test", "2", stderr=(err := io.StringIO()))
    assert "no subscription" in err.getvalue()
