"""Every error of the API is JSON with one shape: `{"error": {"code", "message"}}` (+ `errors`)."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Callable, Iterator

import pytest
from django.db import OperationalError, connections
from django.test import override_settings
from rest_framework.test import APIClient

from m3saas.logging import JsonFormatter, TenantFilter
from modules.test.v1.views import AnimalListView
from tests.tcp_proxy import TcpProxy

pytestmark = [pytest.mark.django_db, pytest.mark.module_apis_public]


@pytest.fixture
def client() -> APIClient:
    # A server answers an exception with a response; it does not re-raise it into the caller.
    return APIClient(raise_request_exception=False)


def assert_error_shape(response, status: int, code: str) -> dict:
    assert response.status_code == status
    assert response["Content-Type"].startswith("application/json")
    body = response.json()
    assert body["error"]["code"] == code
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    return body


def test_unknown_route_is_404_json(client):
    assert_error_shape(client.get("/no/such/route"), 404, "not_found")


@override_settings(DEBUG=True)
def test_unknown_route_is_404_json_even_with_debug_on(client):
    body = assert_error_shape(client.get("/no/such/route"), 404, "not_found")
    assert "Traceback" not in str(body)


def test_unknown_route_inside_a_module_is_404_json(client, make_tenant):
    tenant = make_tenant()
    assert_error_shape(client.get(f"/{tenant.id}/test/v1/no-such-thing"), 404, "not_found")


def test_unknown_tenant_is_404_json(client, db):
    assert_error_shape(client.get("/98765/test/v1/animals"), 404, "not_found")


def test_wrong_method_is_405_json_with_allow_header(client, make_tenant):
    tenant = make_tenant()
    response = client.patch(f"/{tenant.id}/test/v1/animals", {}, format="json")
    assert_error_shape(response, 405, "method_not_allowed")
    assert "GET" in response["Allow"]


def test_malformed_json_is_400_json(client, make_tenant):
    tenant = make_tenant()
    response = client.post(f"/{tenant.id}/test/v1/animals", "{not json", content_type="application/json")
    assert_error_shape(response, 400, "parse_error")


def test_field_errors_are_listed_under_errors(client, make_tenant):
    tenant = make_tenant()
    response = client.post(f"/{tenant.id}/test/v1/animals", {"name": ""}, format="json")
    body = assert_error_shape(response, 400, "invalid")
    assert isinstance(body["errors"]["name"], list) and body["errors"]["name"]


@override_settings(MAX_REQUEST_BODY_SIZE=100)
def test_oversized_body_is_413_json(client, make_tenant):
    tenant = make_tenant()
    response = client.post(f"/{tenant.id}/test/v1/animals", {"name": "x" * 200}, format="json")
    body = assert_error_shape(response, 413, "request_too_large")
    assert "100 bytes" in body["error"]["message"]


@override_settings(MAX_REQUEST_BODY_SIZE=100)
def test_body_within_the_limit_is_served(client, make_tenant):
    tenant = make_tenant()
    response = client.post(f"/{tenant.id}/test/v1/animals", {"name": "yak"}, format="json")
    assert response.status_code == 201


@pytest.fixture
def failing_view(monkeypatch) -> None:
    def boom(self, request, **kwargs):
        raise RuntimeError("boom: an unexpected failure")

    monkeypatch.setattr(AnimalListView, "get", boom)


def _logged_error_ids(caplog) -> list[str]:
    return [str(r.error_id) for r in caplog.records if getattr(r, "error_id", None)]


def test_unexpected_failure_is_500_with_an_error_id_that_is_logged(client, make_tenant, failing_view, caplog):
    tenant = make_tenant()
    with caplog.at_level(logging.ERROR):
        response = client.get(f"/{tenant.id}/test/v1/animals")
    body = assert_error_shape(response, 500, "server_error")
    error_id = body["error"]["id"]
    assert error_id in body["error"]["message"]
    records = [r for r in caplog.records if getattr(r, "error_id", None) == error_id]
    assert records and records[0].exc_info is not None
    assert error_id in records[0].getMessage()
    assert "boom" not in response.content.decode()


@override_settings(DEBUG=True)
def test_unexpected_failure_shows_no_traceback_with_debug_on(client, make_tenant, failing_view):
    tenant = make_tenant()
    response = client.get(f"/{tenant.id}/test/v1/animals")
    assert_error_shape(response, 500, "server_error")
    assert "Traceback" not in response.content.decode()


@pytest.fixture
def failing_middleware(monkeypatch) -> None:
    """A failure outside DRF: the tenant lookup of the tenant middleware raises."""
    import tenants.middleware

    def boom(**kwargs):
        raise RuntimeError("boom in the middleware")

    monkeypatch.setattr(tenants.middleware, "tenant_info_get", boom)


@pytest.mark.parametrize("debug", [False, True])
def test_failure_in_a_middleware_is_500_json_with_logged_error_id(client, failing_middleware, caplog, debug):
    with override_settings(DEBUG=debug), caplog.at_level(logging.ERROR):
        response = client.get("/1/test/v1/animals")
    body = assert_error_shape(response, 500, "server_error")
    assert body["error"]["id"] in _logged_error_ids(caplog)
    assert "Traceback" not in response.content.decode()


def test_database_error_that_is_not_an_outage_is_500(client, monkeypatch):
    import tenants.middleware

    def bad_query(**kwargs):
        raise OperationalError(1054, "Unknown column 'x' in 'field list'")

    monkeypatch.setattr(tenants.middleware, "tenant_info_get", bad_query)
    assert_error_shape(client.get("/1/test/v1/animals"), 500, "server_error")


@pytest.fixture
def tenant_outage(make_tenant, tmp_path) -> Iterator[tuple[int, Callable[[], None], Callable[[], None]]]:
    """A provisioned tenant and `(cut, restore)` of its database server.

    MariaDB: the tenant's connection goes through a TCP proxy to the real server, cut by the
    test; SQLite: the tenant's file goes out of reach. The shared server is never stopped.
    """
    tenant = make_tenant()
    entry = connections.settings[tenant.alias]
    saved = dict(entry)
    proxy: TcpProxy | None = None
    if entry["ENGINE"].endswith("mysql"):
        proxy = TcpProxy((entry["HOST"] or "127.0.0.1", int(entry["PORT"] or 3306))).start()
        entry.update(HOST="127.0.0.1", PORT=str(proxy.port))
        connections[tenant.alias].close()
        cut, restore = proxy.cut, proxy.restore
    else:

        def cut() -> None:
            entry["NAME"] = str(tmp_path / "gone" / "tenant.sqlite3")
            connections[tenant.alias].close()

        def restore() -> None:
            entry["NAME"] = saved["NAME"]

    try:
        yield tenant.id, cut, restore
    finally:
        connections[tenant.alias].close()
        entry.update(saved)
        if proxy is not None:
            proxy.cut()


def test_database_down_is_503_json(client, tenant_outage, caplog):
    tenant_id, cut, _ = tenant_outage
    assert client.get(f"/{tenant_id}/test/v1/animals").status_code == 200
    cut()
    with caplog.at_level(logging.ERROR):
        response = client.get(f"/{tenant_id}/test/v1/animals")
    body = assert_error_shape(response, 503, "database_unavailable")
    assert body["error"]["id"] in _logged_error_ids(caplog)


def test_requests_recover_when_the_database_is_back(client, tenant_outage):
    tenant_id, cut, restore = tenant_outage
    assert client.get(f"/{tenant_id}/test/v1/animals").status_code == 200
    cut()
    assert client.get(f"/{tenant_id}/test/v1/animals").status_code == 503
    restore()
    # What the WSGI server's request signals do between two requests (the test client skips them).
    for conn in connections.all(initialized_only=True):
        if conn.settings_dict.get("M3SAAS_TENANT"):
            conn.close_if_unusable_or_obsolete()
    assert client.get(f"/{tenant_id}/test/v1/animals").status_code == 200


def test_master_database_down_during_tenant_lookup_is_503_json(client, monkeypatch):
    """The tenant middleware runs outside DRF: an outage there is a 503 too."""
    import tenants.middleware

    def unreachable(**kwargs):
        raise OperationalError(2003, "Can't connect to MySQL server on 'db' (111)")

    monkeypatch.setattr(tenants.middleware, "tenant_info_get", unreachable)
    for debug in (False, True):
        with override_settings(DEBUG=debug):
            assert_error_shape(client.get("/1/test/v1/animals"), 503, "database_unavailable")


def test_admin_keeps_its_html_pages(client, db):
    response = client.get("/admin/login/")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/html")


@pytest.fixture
def json_log() -> Iterator[io.StringIO]:
    """The log lines as the production handler writes them (tenant filter, JSON formatter)."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(TenantFilter())
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield stream
    finally:
        root.removeHandler(handler)


def _lines(stream: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_not_found_warning_of_a_tenant_request_carries_the_tenant(client, make_tenant, json_log):
    tenant = make_tenant()
    client.get(f"/{tenant.id}/test/v1/no-such-thing")
    lines = [line for line in _lines(json_log) if line["logger"] == "django.request"]
    assert lines and all(line["tenant"] == tenant.id for line in lines)
    assert lines[0]["status_code"] == 404


def test_error_logged_inside_a_tenant_request_carries_tenant_and_error_id(client, make_tenant, failing_view, json_log):
    tenant = make_tenant()
    body = client.get(f"/{tenant.id}/test/v1/animals").json()
    lines = [line for line in _lines(json_log) if line.get("error_id") == body["error"]["id"]]
    assert lines and lines[0]["tenant"] == tenant.id and lines[0]["level"] == "ERROR"
    assert "RuntimeError" in lines[0]["exc_info"]


def test_lines_outside_a_tenant_carry_a_dash(client, db, json_log):
    client.get("/no/such/route")
    assert {line["tenant"] for line in _lines(json_log)} == {"-"}
