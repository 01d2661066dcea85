"""A request's cost and outcome do not depend on how many tenants the process has registered
(issue 16): registering one while another thread walks the databases breaks nothing, and
`ATOMIC_REQUESTS` is looked up among the configured databases only."""

from __future__ import annotations

import dataclasses
import threading
from typing import Any

import pytest
from django.db import DEFAULT_DB_ALIAS, connections, transaction
from django.http import HttpRequest, HttpResponse
from rest_framework.test import APIClient

from m3saas.handlers import ASGIHandler, WSGIHandler
from m3saas.tenancy.connections import (
    TENANT_MARK,
    TenantConnectionHandler,
    atomic_request_aliases,
    tenant_aliases,
    tenant_connection_register,
    tenant_connection_unregister,
    tenant_connections_register_all,
)

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.module_apis_public]


def handler_of_connections() -> TenantConnectionHandler:
    assert isinstance(connections, TenantConnectionHandler)
    return connections


def _other(tenant: Any, number: int) -> Any:
    """`tenant` under another alias: registering it adds an entry, nothing is created."""
    return dataclasses.replace(tenant, name=f"{tenant.name}_x{number}")


def test_registering_a_tenant_while_the_databases_are_walked_breaks_no_walk(make_tenant):
    """Django walks `connections.settings` on every request (`make_view_atomic`); a tenant that
    another thread registers meanwhile used to make that walk raise "dictionary changed size
    during iteration", a 500 (seen under gunicorn while a worker met tenants for the first time)."""
    tenant = make_tenant(provision=False)
    walk = iter(connections.settings.items())
    next(walk)
    tenant_connection_register(_other(tenant, 1))
    walked = list(walk)  # raised RuntimeError when the entry was added in place
    assert all(isinstance(entry, dict) for _, entry in walked)
    walk = iter(connections.settings.items())
    next(walk)
    tenant_connection_unregister(_other(tenant, 1).alias)
    list(walk)
    assert _other(tenant, 1).alias not in connections.settings


def test_threads_registering_at_once_lose_no_alias(make_tenant):
    tenant = make_tenant(provision=False)
    others = [_other(tenant, n) for n in range(200)]
    start = threading.Barrier(4)

    def register(part: list[Any]) -> None:
        start.wait(timeout=30)
        for info in part:
            tenant_connection_register(info)

    threads = [threading.Thread(target=register, args=(others[i::4],)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    try:
        assert {info.alias for info in others} <= set(tenant_aliases())
    finally:
        for info in others:
            tenant_connection_unregister(info.alias)


def test_registering_every_tenant_copies_the_databases_once(make_tenant, monkeypatch):
    """`tenant_connections_register_all` (every command's start) makes one new settings dict for
    all tenants, not one per tenant (10,000 tenants would copy 50 million entries)."""
    tenants = [make_tenant(provision=False) for _ in range(3)]
    for info in tenants:
        tenant_connection_unregister(info.alias)
    copies: list[int] = []
    real = TenantConnectionHandler.settings_update

    def counted(self: Any, changes: dict[str, Any]) -> None:
        copies.append(len(changes))
        real(self, changes)

    monkeypatch.setattr(TenantConnectionHandler, "settings_update", counted)
    assert tenant_connections_register_all() >= 3
    assert len(copies) == 1 and copies[0] >= 3
    assert {info.alias for info in tenants} <= set(tenant_aliases())


def _view_in_transaction(request: HttpRequest) -> HttpResponse:
    return HttpResponse(str(connections[DEFAULT_DB_ALIAS].in_atomic_block))


@pytest.mark.parametrize("handler_class", [WSGIHandler, ASGIHandler])
def test_a_configured_database_with_atomic_requests_wraps_the_view_as_in_django(handler_class, monkeypatch):
    handler = handler_class()
    monkeypatch.setitem(connections.settings[DEFAULT_DB_ALIAS], "ATOMIC_REQUESTS", True)
    monkeypatch.setattr(connections, "settings", dict(connections.settings))  # a new dict: looked at again
    assert atomic_request_aliases() == (DEFAULT_DB_ALIAS,)
    assert handler.make_view_atomic(_view_in_transaction)(HttpRequest()).content == b"True"

    def opted_out_view(request: HttpRequest) -> HttpResponse:
        return _view_in_transaction(request)

    opted_out = transaction.non_atomic_requests(opted_out_view)  # marks the function itself
    assert handler.make_view_atomic(opted_out)(HttpRequest()).content == b"False"

    async def async_view(request: HttpRequest) -> HttpResponse:
        return HttpResponse()

    with pytest.raises(RuntimeError, match="ATOMIC_REQUESTS with async views"):
        handler.make_view_atomic(async_view)


class _Watched(dict[str, Any]):
    """A settings entry that records every read of it."""

    reads = 0

    def __getitem__(self, key: str) -> Any:
        _Watched.reads += 1
        return super().__getitem__(key)

    def get(self, key: str, default: Any = None) -> Any:
        _Watched.reads += 1
        return super().get(key, default)


def test_a_request_reads_no_tenant_entry_to_find_atomic_databases(make_tenant):
    """Django's own `make_view_atomic` reads every tenant entry on every request: 57 µs a request
    with 1,000 tenants registered, 470 µs with 10,000."""
    tenant = make_tenant(provision=False)
    tenant_connection_register(tenant)
    watched = _Watched(connections.settings[tenant.alias])
    handler_of_connections().settings_update({tenant.alias: watched})
    assert watched[TENANT_MARK] is True
    handler = WSGIHandler()
    handler.make_view_atomic(_view_in_transaction)  # the first request after a change looks once
    _Watched.reads = 0
    for _ in range(3):
        handler.make_view_atomic(_view_in_transaction)
    assert _Watched.reads == 0
    handler_of_connections().settings_update({tenant.alias: None})


def test_the_served_application_is_the_platforms_handler():
    import m3saas.asgi
    import m3saas.wsgi

    assert isinstance(m3saas.wsgi.application, WSGIHandler)
    assert isinstance(m3saas.asgi.application, ASGIHandler)


def test_many_threads_meeting_new_tenants_are_all_served(make_tenant):
    """What gunicorn's threads do when a worker meets tenants for the first time."""
    tenants = [make_tenant() for _ in range(4)]
    for info in tenants:
        tenant_connection_unregister(info.alias)
    failures: list[str] = []
    start = threading.Barrier(len(tenants))

    def serve(info: Any) -> None:
        try:
            start.wait(timeout=30)
            client = APIClient()
            for _ in range(5):
                response = client.get(f"/{info.id}/test/v1/animals")
                if response.status_code != 200:
                    failures.append(f"{info.id}: {response.status_code}")
        finally:
            connections.close_all()

    threads = [threading.Thread(target=serve, args=(info,)) for info in tenants]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert failures == []
