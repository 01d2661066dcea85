"""Serving many tenants: bounded connections, reused wrappers, every tenant cached (see docs/performance.md)."""

from __future__ import annotations

import functools

import pytest
from django.db import connections
from django.db.backends.signals import connection_created
from rest_framework.test import APIClient

from m3saas.passwords import password_encrypt
from m3saas.tenancy.cache import master_cache_invalidate, master_cached
from m3saas.tenancy.connections import TENANT_MARK, tenant_connection_register
from m3saas.tenancy.info import TenantInfo

pytestmark = pytest.mark.module_apis_public


def open_tenant_aliases() -> set[str]:
    return {
        c.alias
        for c in connections.all(initialized_only=True)
        if c.connection is not None and c.settings_dict.get(TENANT_MARK)
    }


def close_tenant_connections() -> None:
    for conn in connections.all(initialized_only=True):
        if conn.settings_dict.get(TENANT_MARK):
            conn.close()


def get_animals(tenant: TenantInfo) -> None:
    assert APIClient().get(f"/{tenant.id}/test/v1/animals").status_code == 200


@pytest.mark.django_db
def test_initialized_connections_list_only_this_threads_wrappers(make_tenant):
    """Registered tenants this thread never used are not listed (nor given a wrapper)."""
    used, unused = make_tenant(), make_tenant(provision=False)
    tenant_connection_register(unused)
    close_tenant_connections()
    get_animals(used)
    listed = {c.alias for c in connections.all(initialized_only=True)}
    assert used.alias in listed
    assert unused.alias not in listed
    assert {c.alias for c in connections.all(initialized_only=True)} == listed


@pytest.mark.django_db
def test_the_least_recently_used_tenant_connection_is_closed_first(make_tenant, settings):
    settings.TENANT_MAX_OPEN_CONNECTIONS = 2
    first, second, third = make_tenant(), make_tenant(), make_tenant()
    close_tenant_connections()
    get_animals(first)
    get_animals(second)
    get_animals(first)
    get_animals(third)
    assert open_tenant_aliases() == {first.alias, third.alias}


@pytest.mark.django_db
def test_a_request_never_takes_its_thread_past_the_connection_bound(make_tenant, settings):
    """The connection a request opens is made room for before, not trimmed after."""
    settings.TENANT_MAX_OPEN_CONNECTIONS = 2
    tenants = [make_tenant() for _ in range(4)]
    close_tenant_connections()
    peaks: list[int] = []

    def opened(connection, **kwargs):
        if connection.settings_dict.get(TENANT_MARK):
            peaks.append(len(open_tenant_aliases()))

    connection_created.connect(opened)
    try:
        for tenant in tenants:
            get_animals(tenant)
    finally:
        connection_created.disconnect(opened)
    assert len(peaks) == len(tenants)
    assert max(peaks) <= 2


@pytest.mark.django_db
def test_a_closed_tenant_connection_keeps_its_wrapper_for_the_next_request(make_tenant, settings):
    settings.TENANT_MAX_OPEN_CONNECTIONS = 1
    first, second = make_tenant(), make_tenant()
    close_tenant_connections()
    get_animals(first)
    wrapper = connections[first.alias]
    get_animals(second)
    assert first.alias not in {c.alias for c in connections.all(initialized_only=True)}
    assert wrapper.connection is None
    get_animals(first)
    assert connections[first.alias] is wrapper
    assert open_tenant_aliases() == {first.alias}


@pytest.mark.django_db
def test_a_re_registered_tenant_gets_a_new_wrapper(make_tenant, settings):
    settings.TENANT_MAX_OPEN_CONNECTIONS = 1
    first, second = make_tenant(), make_tenant()
    close_tenant_connections()
    get_animals(first)
    wrapper = connections[first.alias]
    get_animals(second)  # closes and parks the first tenant's wrapper
    changed = TenantInfo(
        id=first.id, name=first.name, user=first.user, password=password_encrypt("changed"), modules=first.modules
    )
    tenant_connection_register(changed)
    assert connections[first.alias] is not wrapper
    assert connections[first.alias].settings_dict is connections.settings[first.alias]


def test_every_tenant_stays_cached_beyond_the_cache_backends_size(settings):
    """Django's per-process cache keeps 300 entries; 1,000 tenants must not be re-read from the master."""
    settings.TENANT_CACHE_TIMEOUT = 300
    computed: list[int] = []

    def resolve(i: int) -> str:
        computed.append(i)
        return f"tenant {i}"

    for _ in range(2):
        for i in range(1000):
            assert master_cached(f"bench:{i}", functools.partial(resolve, i)) == f"tenant {i}"
    assert len(computed) == 1000


def test_an_invalidation_is_seen_by_the_next_read():
    values = iter(["before", "after"])
    assert master_cached("bench:changing", lambda: next(values)) == "before"
    assert master_cached("bench:changing", lambda: next(values)) == "before"
    master_cache_invalidate()
    assert master_cached("bench:changing", lambda: next(values)) == "after"


def test_clearing_the_cache_drops_the_process_copies_too():
    from django.core.cache import cache

    values = iter(["before", "after"])
    assert master_cached("bench:cleared", lambda: next(values)) == "before"
    cache.clear()
    assert master_cached("bench:cleared", lambda: next(values)) == "after"
