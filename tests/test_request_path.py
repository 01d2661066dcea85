"""The tenant route's fast path (issue 16): one generation read per request, one registration,
parsed versions remembered; none of it may change what a request sees or who it reaches."""

from __future__ import annotations

import os
from typing import Any

import pytest
from django.core.cache import cache
from django.db import connections
from rest_framework.test import APIClient

from m3saas.passwords import password_encrypt
from m3saas.tenancy import cache as tenancy_cache
from m3saas.tenancy import connections as tenancy_connections
from m3saas.tenancy.cache import master_cache_invalidate, master_cache_request, master_cached
from m3saas.tenancy.context import tenant_current, use_tenant
from m3saas.tenancy.info import TenantInfo
from m3saas.tenancy.paths import resolve_module_version

pytestmark = pytest.mark.module_apis_public


def _generation_reads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every read of the master generation from the cache, recorded."""
    reads: list[str] = []
    real = tenancy_cache._generation_read

    def counted() -> str:
        generation = real()
        reads.append(generation)
        return generation

    monkeypatch.setattr(tenancy_cache, "_generation_read", counted)
    return reads


def test_a_request_reads_the_master_generation_once(settings, monkeypatch):
    settings.TENANT_CACHE_TIMEOUT = 300
    reads = _generation_reads(monkeypatch)
    with master_cache_request():
        assert master_cached("fast:a", lambda: "a") == "a"
        assert master_cached("fast:b", lambda: "b") == "b"
        assert master_cached("fast:a", lambda: "other") == "a"
    assert len(reads) == 1
    master_cached("fast:a", lambda: "other")
    assert len(reads) == 2  # outside a request: every read asks, as before


def test_a_change_made_elsewhere_is_seen_by_the_next_request(settings):
    """Another process's invalidation (a new generation in the shared cache) reaches the next
    request, never half of the current one."""
    settings.TENANT_CACHE_TIMEOUT = 300
    settings.TENANT_CACHE_GENERATION_CHECK_MS = 0
    values = iter(["before", "after"])
    with master_cache_request():
        assert master_cached("fast:elsewhere", lambda: next(values)) == "before"
        cache.set(tenancy_cache._GENERATION_KEY, "another-process-generation", timeout=None)
        assert master_cached("fast:elsewhere", lambda: next(values)) == "before"
    with master_cache_request():
        assert master_cached("fast:elsewhere", lambda: next(values)) == "after"


def test_an_invalidation_inside_a_request_is_seen_by_its_next_read(settings, monkeypatch):
    settings.TENANT_CACHE_TIMEOUT = 300
    reads = _generation_reads(monkeypatch)
    values = iter(["before", "after"])
    with master_cache_request():
        assert master_cached("fast:changed", lambda: next(values)) == "before"
        master_cache_invalidate()
        assert master_cached("fast:changed", lambda: next(values)) == "after"
    assert len(reads) == 2


def test_requests_in_other_threads_keep_their_own_generation(settings):
    """The memo is per request (a context variable), so a thread never sees another's."""
    import threading

    settings.TENANT_CACHE_TIMEOUT = 300
    seen: list[list[str] | None] = []

    def other() -> None:
        seen.append(tenancy_cache._request_generation.get())

    with master_cache_request():
        master_cached("fast:thread", lambda: "x")
        thread = threading.Thread(target=other)
        thread.start()
        thread.join()
    assert seen == [None]
    assert tenancy_cache._request_generation.get() is None


@pytest.mark.django_db
def test_a_tenant_request_registers_its_alias_once(make_tenant, monkeypatch):
    tenant = make_tenant()
    calls: list[str] = []
    real = tenancy_connections.tenant_connection_register

    def counted(info: TenantInfo) -> str:
        calls.append(info.alias)
        return real(info)

    monkeypatch.setattr("tenants.middleware.tenant_connection_register", counted)
    monkeypatch.setattr("m3saas.tenancy.context.tenant_connection_register", counted)
    assert APIClient().get(f"/{tenant.id}/test/v1/animals").status_code == 200
    assert calls == [tenant.alias]


@pytest.mark.django_db
def test_use_tenant_still_registers_for_every_other_caller(make_tenant):
    tenant = make_tenant()
    tenancy_connections.tenant_connection_unregister(tenant.alias)
    with use_tenant(tenant):
        assert tenant_current() == tenant
        assert tenant.alias in connections.settings


@pytest.mark.django_db
def test_a_changed_password_still_replaces_the_registration(make_tenant):
    """The registration's signature is remembered per (user, password): a new password is a new one."""
    tenant = make_tenant()
    tenancy_connections.tenant_connection_register(tenant)
    before = connections.settings[tenant.alias]
    changed = TenantInfo(
        id=tenant.id, name=tenant.name, user=tenant.user, password=password_encrypt("changed"), modules=tenant.modules
    )
    tenancy_connections.tenant_connection_register(changed)
    assert connections.settings[tenant.alias] is not before
    tenancy_connections.tenant_connection_register(tenant)  # and back: replaced again
    assert connections.settings[tenant.alias]["PASSWORD"] == before["PASSWORD"]


@pytest.mark.django_db
def test_remembered_versions_are_compared_as_before(make_tenant):
    tenant = make_tenant()
    for _ in range(2):
        assert resolve_module_version(tenant, "test", "v1") == "1"
        assert resolve_module_version(tenant, "test", "v1.0") == "1.0"
        assert resolve_module_version(tenant, "test", "v1.4") > "1.3"


@pytest.mark.django_db
def test_the_next_request_after_a_subscription_change_is_refused(make_tenant):
    """With the per-request generation, a change committed between two requests still reaches the second."""
    from subscriptions.models import Subscription

    tenant = make_tenant()
    client = APIClient()
    assert client.get(f"/{tenant.id}/test/v1/animals").status_code == 200
    Subscription.objects.filter(tenant_id=tenant.id).delete()
    assert client.get(f"/{tenant.id}/test/v1/animals").status_code == 404


def test_a_per_process_cache_is_never_asked_for_the_generation(settings, monkeypatch):
    """With the process's own cache (locmem), only this process changes the generation: it is kept
    in memory, not read back per request, and this process's invalidations still apply at once."""
    settings.TENANT_CACHE_TIMEOUT = 300
    settings.TENANT_CACHE_SHARED = False
    master_cache_invalidate()  # this process now knows the generation
    asked: list[str] = []
    real_get = cache.get

    def get(key: str, *args: Any, **kwargs: Any) -> Any:
        asked.append(key)
        return real_get(key, *args, **kwargs)

    monkeypatch.setattr(cache, "get", get)
    values = iter(["before", "after"])
    for _ in range(3):
        with master_cache_request():
            assert master_cached("fast:own", lambda: next(values)) == "before"
    assert tenancy_cache._GENERATION_KEY not in asked
    master_cache_invalidate()
    with master_cache_request():
        assert master_cached("fast:own", lambda: next(values)) == "after"
    assert tenancy_cache._GENERATION_KEY not in asked


def test_the_settings_snapshot_follows_every_settings_change(settings):
    """The route reads its settings from a per-process snapshot (issue 16), dropped on each change."""
    from m3saas.settings_snapshot import snapshot

    settings.TENANT_MAX_OPEN_CONNECTIONS = 3
    settings.MODULE_API_ACCESS = "public"
    assert (snapshot().tenant_max_open_connections, snapshot().module_api_access) == (3, "public")
    settings.TENANT_MAX_OPEN_CONNECTIONS = 5
    settings.MODULE_API_ACCESS = "keys"
    assert (snapshot().tenant_max_open_connections, snapshot().module_api_access) == (5, "keys")


def test_a_dummy_cache_counts_as_shared_and_caches_nothing(settings):
    """A dummy cache holds nothing: the settings count it as shared (only locmem is a process's
    own), so the generation is asked for each time, never kept, and no master read is cached."""
    import subprocess
    import sys

    from django.test import override_settings

    from m3saas.conf import BASE_DIR

    probe = "import django; django.setup(); from django.conf import settings; print(settings.TENANT_CACHE_SHARED)"
    env = {**os.environ, "CACHE_URL": "dummycache://", "DJANGO_SETTINGS_MODULE": "m3saas.settings"}
    out = subprocess.run([sys.executable, "-c", probe], env=env, cwd=BASE_DIR, capture_output=True, text=True)
    assert out.stdout.strip().splitlines()[-1:] == ["True"], out.stderr[-2000:]

    settings.TENANT_CACHE_TIMEOUT = 300
    computed: list[int] = []

    def compute() -> str:
        computed.append(1)
        return "v"

    dummy = {"default": {"BACKEND": "django.core.cache.backends.dummy.DummyCache"}}
    with override_settings(CACHES=dummy, TENANT_CACHE_SHARED=True):
        for _ in range(3):
            with master_cache_request():
                assert master_cached("fast:dummy", compute) == "v"
    assert len(computed) == 3


def _counted(monkeypatch: pytest.MonkeyPatch, name: str) -> list[Any]:
    """Calls of `tenants.middleware.<name>`, recorded."""
    import tenants.middleware

    calls: list[Any] = []
    real = getattr(tenants.middleware, name)

    def counted(*args: Any, **kwargs: Any) -> Any:
        calls.append(args or kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(tenants.middleware, name, counted)
    return calls


@pytest.mark.django_db
def test_a_ready_tenants_route_is_checked_once_per_master_generation(make_tenant, settings, monkeypatch):
    settings.TENANT_CACHE_TIMEOUT = 300
    tenant = make_tenant()
    reads, versions = _counted(monkeypatch, "tenant_info_get"), _counted(monkeypatch, "resolve_module_version")
    client = APIClient()
    for _ in range(3):
        assert client.get(f"/{tenant.id}/test/v1/animals").status_code == 200
    assert (len(reads), len(versions)) == (1, 1)
    for _ in range(2):  # another version of the same module: the same route, the segment checked once
        assert client.get(f"/{tenant.id}/test/v1.4/animals").status_code == 200
    assert (len(reads), len(versions)) == (1, 2)
    assert client.get(f"/{tenant.id}/test/v2/animals").status_code == 404  # still checked, still refused
    master_cache_invalidate()  # any master change: every route is checked again
    assert client.get(f"/{tenant.id}/test/v1/animals").status_code == 200
    assert len(reads) == 2


@pytest.mark.django_db
def test_made_up_version_segments_do_not_grow_the_remembered_routes(make_tenant, settings):
    import tenants.middleware

    settings.TENANT_CACHE_TIMEOUT = 300
    tenant = make_tenant()
    client = APIClient()
    for minor in range(30):
        assert client.get(f"/{tenant.id}/test/v1.{minor}/animals").status_code == 200
    assert client.get(f"/{tenant.id}/test/v1.{'0.' * 500}0/animals").status_code == 200
    route = tenants.middleware._routes[(tenant.id, "test")]
    assert len(route.versions) == tenants.middleware.SEGMENTS_PER_ROUTE
    assert all(len(segment) <= tenants.middleware.SEGMENT_MAX_LENGTH for segment in route.versions)
    assert [key for key in tenants.middleware._routes if key[0] == tenant.id] == [(tenant.id, "test")]


@pytest.mark.django_db
def test_a_remembered_route_expires_with_the_cached_master_values_it_was_built_from(make_tenant, settings):
    """Another process's change reaches this one when its cached values expire (per-process cache):
    a route remembered later from the same cached values must not outlive them."""
    import time

    from tenants.models import Tenant

    settings.TENANT_CACHE_TIMEOUT = 1
    settings.AUTO_MIGRATION = False
    tenant = make_tenant()
    client = APIClient()
    assert client.get(f"/{tenant.id}/notes/v1/notes").status_code == 404  # caches the tenant, no route
    time.sleep(0.6)
    assert client.get(f"/{tenant.id}/test/v1/animals").status_code == 200  # a route from the cached tenant
    # Another process fails the tenant: nothing in this process hears of it.
    Tenant.objects.filter(pk=tenant.id).update(schema_state=Tenant.SchemaState.FAILED)
    time.sleep(0.6)  # past the cached tenant's second, not past the route's own if it counted from its making
    assert client.get(f"/{tenant.id}/test/v1/animals").status_code == 503


@pytest.mark.django_db
def test_nothing_is_remembered_when_nothing_is_cached(make_tenant, settings, monkeypatch):
    settings.TENANT_CACHE_TIMEOUT = 0
    tenant = make_tenant()
    reads = _counted(monkeypatch, "tenant_info_get")
    client = APIClient()
    for _ in range(2):
        assert client.get(f"/{tenant.id}/test/v1/animals").status_code == 200
    assert len(reads) == 2


@pytest.mark.django_db
def test_a_tenant_that_starts_moving_after_its_route_was_remembered_refuses_writes(make_tenant, settings, monkeypatch):
    """(A real move, on two servers: tenants/tests/test_moves_killed.py.)"""
    from tenants.models import Tenant

    settings.TENANT_CACHE_TIMEOUT = 300
    tenant = make_tenant()
    client = APIClient()
    assert client.post(f"/{tenant.id}/test/v1/animals", {"name": "before"}, format="json").status_code == 201
    # A move under way, its mover alive (it holds the tenant's lock), as the mover marks it.
    monkeypatch.setattr("tenants.moves._move_end_if_dead", lambda tenant: False)
    Tenant.objects.filter(pk=tenant.id).update(moving=True)
    master_cache_invalidate()
    response = client.post(f"/{tenant.id}/test/v1/animals", {"name": "during"}, format="json")
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "tenant_moving"
    assert client.get(f"/{tenant.id}/test/v1/animals").status_code == 200  # reads go on
    # A moving tenant's route is not remembered: each write is refused, not only the first.
    assert client.post(f"/{tenant.id}/test/v1/animals", {"name": "again"}, format="json").status_code == 503


@pytest.mark.django_db
def test_a_tenant_no_longer_ready_after_its_route_was_remembered_is_refused(make_tenant, settings):
    from tenants.models import Tenant

    settings.TENANT_CACHE_TIMEOUT = 300
    settings.AUTO_MIGRATION = False
    tenant = make_tenant()
    client = APIClient()
    assert client.get(f"/{tenant.id}/test/v1/animals").status_code == 200
    Tenant.objects.filter(pk=tenant.id).update(schema_state=Tenant.SchemaState.FAILED)
    master_cache_invalidate()
    assert client.get(f"/{tenant.id}/test/v1/animals").status_code == 503


@pytest.mark.django_db
def test_a_remembered_route_registers_its_alias_again_when_the_registration_went(make_tenant, settings):
    settings.TENANT_CACHE_TIMEOUT = 300
    tenant = make_tenant()
    client = APIClient()
    assert client.get(f"/{tenant.id}/test/v1/animals").status_code == 200
    tenancy_connections.tenant_connection_unregister(tenant.alias)
    assert client.get(f"/{tenant.id}/test/v1/animals").status_code == 200
    assert tenant.alias in connections.settings


@pytest.mark.django_db
def test_a_new_default_rate_limit_applies_to_remembered_routes(make_tenant, settings):
    settings.TENANT_CACHE_TIMEOUT = 300
    settings.TENANT_RATE_LIMIT = None
    tenant = make_tenant()
    client = APIClient()
    assert client.get(f"/{tenant.id}/test/v1/animals").status_code == 200
    from m3saas.access import rate_limit_parse

    settings.TENANT_RATE_LIMIT = rate_limit_parse("1/day")
    assert client.get(f"/{tenant.id}/test/v1/animals").status_code == 200
    assert client.get(f"/{tenant.id}/test/v1/animals").status_code == 429
