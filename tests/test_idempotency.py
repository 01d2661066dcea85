"""`Idempotency-Key` on module writes: a retry is answered from the first run, never run twice.

Through the `test` v1 animals API, on whichever engine the pass runs (SQLite or MariaDB).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from django.conf import settings
from django.db import connections
from django.http import HttpRequest, HttpResponse
from django.test import RequestFactory, override_settings
from django.utils import timezone
from rest_framework.test import APIClient

from m3saas.bookkeeping.models import IdempotencyKey
from m3saas.idempotency import IdempotencyMiddleware, idempotency_keys_purge
from m3saas.tenancy.context import use_tenant
from modules.test.v1.models import Animal
from tenants.cron import crons_run
from tests.idempotency_middleware import HoldFirstWriteMiddleware

pytestmark = [pytest.mark.django_db, pytest.mark.module_apis_public]

IDEMPOTENCY = "m3saas.idempotency.IdempotencyMiddleware"


def _middleware(*, outside: str | None = None, inside: str | None = None) -> list[str]:
    """The production middleware with a test middleware just outside or inside the idempotency one."""
    chain: list[str] = []
    for name in settings.MIDDLEWARE:
        if name == IDEMPOTENCY:
            chain += [m for m in (outside, name, inside) if m]
        else:
            chain.append(name)
    return chain


@pytest.fixture
def tenant(make_tenant):
    """A tenant of `test` v1 (the default of `make_tenant`)."""
    return make_tenant()


@pytest.fixture
def client() -> APIClient:
    """DRF's client in place of pytest-django's: JSON bodies with `format="json"`."""
    return APIClient()


@pytest.fixture
def hold() -> Iterator[type[HoldFirstWriteMiddleware]]:
    HoldFirstWriteMiddleware.reset()
    with override_settings(MIDDLEWARE=_middleware(inside="tests.idempotency_middleware.HoldFirstWriteMiddleware")):
        yield HoldFirstWriteMiddleware
    HoldFirstWriteMiddleware.release.set()


def animals(tenant) -> str:
    return f"/{tenant.id}/test/v1/animals"


def post(client: APIClient, tenant, name: str, key: str | None = "key-1", **headers: str):
    if key is not None:
        headers["HTTP_IDEMPOTENCY_KEY"] = key
    return client.post(animals(tenant), {"name": name}, format="json", **headers)  # type: ignore[arg-type]


def names(tenant) -> list[str]:
    return list(Animal.objects.using(tenant.alias).values_list("name", flat=True))


@pytest.fixture
def warm(tenant):
    """The tenant's master row cached, so that other threads (outside the test's transaction) need no master read."""
    assert APIClient().get(animals(tenant)).status_code == 200
    return tenant


def in_thread(target, results: list[Any]) -> threading.Thread:
    def run() -> None:
        try:
            results.append(target())
        finally:
            connections.close_all()

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def test_a_retry_with_the_same_key_replays_the_response_and_writes_nothing(tenant, client):
    first = post(client, tenant, "owl")
    retry = post(client, tenant, "owl")
    assert first.status_code == retry.status_code == 201
    assert retry.json() == first.json()
    assert retry["Content-Type"] == first["Content-Type"] == "application/json"
    assert retry["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first
    assert names(tenant) == ["owl"]


def test_the_same_key_with_another_body_is_422(tenant, client):
    assert post(client, tenant, "owl").status_code == 201
    response = post(client, tenant, "emu")
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "idempotency_key_reused"
    assert names(tenant) == ["owl"]


def test_the_same_key_on_another_method_or_path_is_422(tenant, client):
    created = post(client, tenant, "owl").json()
    response = client.delete(f"{animals(tenant)}/{created['id']}", HTTP_IDEMPOTENCY_KEY="key-1")
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "idempotency_key_reused"
    assert names(tenant) == ["owl"]


def test_without_a_key_every_post_writes(tenant, client):
    first, second = post(client, tenant, "owl", key=None), post(client, tenant, "owl", key=None)
    assert first.status_code == second.status_code == 201
    assert "Idempotent-Replayed" not in second
    assert names(tenant) == ["owl", "owl"]
    assert not IdempotencyKey.objects.using(tenant.alias).exists()


def test_keys_belong_to_their_tenant(make_tenant, client):
    first, second = make_tenant(), make_tenant()
    a, b = post(client, first, "owl"), post(client, second, "owl")
    assert a.status_code == b.status_code == 201
    assert "Idempotent-Replayed" not in b
    assert names(first) == names(second) == ["owl"]
    assert IdempotencyKey.objects.using(first.alias).count() == IdempotencyKey.objects.using(second.alias).count() == 1


def test_a_delete_retried_with_its_key_is_replayed_not_404(tenant, client):
    animal = Animal.objects.using(tenant.alias).create(name="bee")
    url = f"{animals(tenant)}/{animal.pk}"
    assert client.delete(url, HTTP_IDEMPOTENCY_KEY="del-1").status_code == 204
    retry = client.delete(url, HTTP_IDEMPOTENCY_KEY="del-1")
    assert retry.status_code == 204
    assert retry["Idempotent-Replayed"] == "true"


def test_a_refused_body_is_replayed_as_refused(tenant, client):
    first = post(client, tenant, "")
    retry = post(client, tenant, "")
    assert first.status_code == retry.status_code == 400
    assert retry.json() == first.json()
    assert retry["Idempotent-Replayed"] == "true"


def test_a_crash_after_the_commit_is_replayed_on_retry(tenant):
    """The row and the key commit together: the client that got no answer gets it on retry."""
    crashing = _middleware(outside="tests.idempotency_middleware.CrashAfterCommitMiddleware")
    with override_settings(MIDDLEWARE=crashing):
        lost = post(APIClient(raise_request_exception=False), tenant, "owl")
    assert lost.status_code == 500
    assert names(tenant) == ["owl"]
    retry = post(APIClient(), tenant, "owl")
    assert retry.status_code == 201
    assert retry["Idempotent-Replayed"] == "true"
    assert retry.json()["name"] == "owl"
    assert names(tenant) == ["owl"]


def test_a_failed_request_keeps_neither_its_rows_nor_its_key(tenant):
    failing = _middleware(inside="tests.idempotency_middleware.FailAfterViewMiddleware")
    with override_settings(MIDDLEWARE=failing):
        failed = post(APIClient(raise_request_exception=False), tenant, "owl")
    assert failed.status_code == 500
    assert names(tenant) == []
    assert not IdempotencyKey.objects.using(tenant.alias).exists()
    retry = post(APIClient(), tenant, "owl")
    assert retry.status_code == 201
    assert "Idempotent-Replayed" not in retry
    assert names(tenant) == ["owl"]


def test_a_key_expires_after_a_day(tenant, client):
    assert post(client, tenant, "owl").status_code == 201
    IdempotencyKey.objects.using(tenant.alias).update(created_at=timezone.now() - timedelta(days=1, seconds=1))
    again = post(client, tenant, "owl")
    assert again.status_code == 201
    assert "Idempotent-Replayed" not in again
    assert names(tenant) == ["owl", "owl"]
    assert IdempotencyKey.objects.using(tenant.alias).count() == 1


def test_a_key_younger_than_a_day_is_kept_by_the_purge(tenant, client):
    post(client, tenant, "owl")
    post(client, tenant, "emu", key="key-2")
    keys = IdempotencyKey.objects.using(tenant.alias)
    oldest = keys.order_by("pk").values_list("pk", flat=True)[0]
    keys.filter(pk=oldest).update(created_at=timezone.now() - timedelta(days=1, seconds=1))
    assert idempotency_keys_purge(alias=tenant.alias) == 1
    assert post(client, tenant, "emu", key="key-2")["Idempotent-Replayed"] == "true"


def test_a_concurrent_request_with_the_key_is_409_while_the_first_runs(tenant, warm, hold):
    results: list[Any] = []
    first = in_thread(lambda: post(APIClient(), tenant, "owl"), results)
    assert hold.entered.wait(timeout=10)
    concurrent = post(APIClient(), tenant, "owl")
    hold.release.set()
    first.join(timeout=30)
    assert concurrent.status_code == 409
    assert concurrent.json()["error"]["code"] == "idempotency_key_in_progress"
    assert concurrent["Retry-After"] == "1"
    assert [r.status_code for r in results] == [201]
    assert names(tenant) == ["owl"]
    assert post(APIClient(), tenant, "owl")["Idempotent-Replayed"] == "true"


def test_two_racing_requests_with_one_key_write_once(tenant, warm):
    barrier = threading.Barrier(2)
    results: list[Any] = []

    def racer():
        barrier.wait(timeout=10)
        return post(APIClient(), tenant, "owl")

    threads = [in_thread(racer, results) for _ in range(2)]
    for thread in threads:
        thread.join(timeout=60)
    statuses = sorted(r.status_code for r in results)
    replayed = [r for r in results if r.get("Idempotent-Replayed") == "true"]
    assert statuses == [201, 409] or (statuses == [201, 201] and len(replayed) == 1)
    assert names(tenant) == ["owl"]


def test_an_abandoned_claim_is_taken_over_and_the_late_first_request_writes_nothing(tenant, warm, hold):
    """A claim past its lease goes to the retry; the slow first request then loses and rolls back."""
    results: list[Any] = []
    first = in_thread(lambda: post(APIClient(), tenant, "owl"), results)
    assert hold.entered.wait(timeout=10)
    stale = timezone.now() - timedelta(seconds=settings.IDEMPOTENCY_KEY_LEASE + 1)
    IdempotencyKey.objects.using(tenant.alias).update(created_at=stale)
    retry = post(APIClient(), tenant, "owl")
    hold.release.set()
    first.join(timeout=30)
    assert retry.status_code == 201
    assert "Idempotent-Replayed" not in retry
    assert [r.status_code for r in results] == [409]
    assert names(tenant) == ["owl"]
    assert post(APIClient(), tenant, "owl").json() == retry.json()


@pytest.mark.parametrize(
    "key",
    ["", "   ", "k" * 256, "cl\u00e9", "a\x01b", "tab\there", "line\nbreak"],
    ids=["empty", "blank", "too-long", "non-ascii", "control", "tab", "newline"],
)
def test_a_hostile_key_is_400_and_writes_nothing(tenant, client, key):
    response = post(client, tenant, "owl", key=key)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "idempotency_key_invalid"
    assert names(tenant) == []


def test_a_key_of_255_printable_characters_is_accepted(tenant, client):
    key = ("Ab9 ~!" * 50)[:255]
    assert post(client, tenant, "owl", key=key).status_code == 201
    assert post(client, tenant, "owl", key=key)["Idempotent-Replayed"] == "true"


def test_a_key_is_bound_to_the_callers_credentials(tenant, client, tenant_key):
    """Another caller (another API key of the same tenant) never gets the first caller's response."""
    first, second = tenant_key(tenant, name="first"), tenant_key(tenant, name="second")
    assert post(client, tenant, "owl", HTTP_AUTHORIZATION=f"Bearer {first}").status_code == 201
    other = post(client, tenant, "owl", HTTP_AUTHORIZATION=f"Bearer {second}")
    assert other.status_code == 422
    assert "owl" not in other.content.decode()
    assert post(client, tenant, "owl", HTTP_AUTHORIZATION=f"Bearer {first}")["Idempotent-Replayed"] == "true"


def test_the_daily_run_purges_the_expired_keys(tenant, client, settings):
    settings.BACKUP_REPEAT = "off"
    post(client, tenant, "owl")
    IdempotencyKey.objects.using(tenant.alias).update(created_at=timezone.now() - timedelta(days=1, seconds=1))
    assert crons_run(tenant_names=[tenant.name]).ok
    assert not IdempotencyKey.objects.using(tenant.alias).exists()


def test_a_retry_with_the_same_api_key_in_another_spelling_is_replayed(tenant, client, tenant_key):
    """The key the platform authenticated counts, not how its header was written."""
    key = tenant_key(tenant)
    assert post(client, tenant, "owl", HTTP_AUTHORIZATION=f"Bearer {key}").status_code == 201
    retried = post(client, tenant, "owl", HTTP_AUTHORIZATION=f"Api-Key {key}")
    assert retried.status_code == 201 and retried["Idempotent-Replayed"] == "true"


def test_a_read_is_passed_on_without_copying_the_request_headers(tenant):
    """`request.headers` copies every header; a read never needs the key, so it is not built (issue 16)."""
    built: list[bool] = []

    def view(request: HttpRequest) -> HttpResponse:
        built.append("headers" in request.__dict__)
        return HttpResponse()

    request = RequestFactory().get(animals(tenant), HTTP_IDEMPOTENCY_KEY="key-1")
    with use_tenant(tenant):
        assert IdempotencyMiddleware(view)(request).status_code == 200
    assert built == [False]
