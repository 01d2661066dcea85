"""Hostile input is a client error: 400/404/413 in the one JSON error shape, logged as a warning at most."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator

import jsonschema
import pytest
from django.test import Client, override_settings
from rest_framework.test import APIClient

from m3saas.parsers import MAX_JSON_DEPTH

pytestmark = [pytest.mark.django_db, pytest.mark.module_apis_public]

MANY_PARAMETERS = "&".join(f"p{i}=1" for i in range(1_001))
FIVE_THOUSAND_DIGITS = "7" * 5_000


@pytest.fixture
def client() -> APIClient:
    # A server answers an exception with a response; it does not re-raise it into the caller.
    return APIClient(raise_request_exception=False)


@pytest.fixture(autouse=True)
def no_error_logged(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """Every refusal here is the client's fault: a warning at most, never an error with a traceback."""
    with caplog.at_level(logging.WARNING):
        yield
    errors = [f"{r.name}: {r.getMessage()[:200]}" for r in caplog.records if r.levelno >= logging.ERROR]
    assert not errors


def assert_refused(response, status: int, code: str) -> None:
    assert response.status_code == status, response.content[:300]
    assert response["Content-Type"].startswith("application/json")
    error = response.json()["error"]
    assert error["code"] == code
    assert error["message"]
    assert "id" not in error  # no error id: nothing went wrong on the server


def nested(depth: int) -> str:
    return '{"name": ' + "[" * depth + "]" * depth + "}"


def test_json_nested_1000_levels_deep_is_400(client, make_tenant):
    tenant = make_tenant()
    body = "[" * 1_000 + "]" * 1_000  # 2 KB
    response = client.post(f"/{tenant.id}/test/v1/animals", body, content_type="application/json")
    assert_refused(response, 400, "parse_error")


def test_json_nested_past_the_depth_limit_is_400_even_below_the_recursion_limit(client, make_tenant):
    tenant = make_tenant()
    response = client.post(f"/{tenant.id}/test/v1/animals", nested(MAX_JSON_DEPTH), content_type="application/json")
    assert_refused(response, 400, "parse_error")


def test_json_within_the_depth_limit_reaches_the_serializer(client, make_tenant):
    tenant = make_tenant()
    response = client.post(f"/{tenant.id}/test/v1/animals", nested(MAX_JSON_DEPTH - 1), content_type="application/json")
    assert_refused(response, 400, "invalid")


@pytest.mark.parametrize("path", ["/health", "/schema/", "/schema/test/v1/", "/{tenant}/test/v1/animals", "/nowhere"])
def test_too_many_query_parameters_are_400_on_every_path(client, make_tenant, path):
    tenant = make_tenant()
    response = client.get(f"{path.format(tenant=tenant.id)}?{MANY_PARAMETERS}")
    assert_refused(response, 400, "too_many_fields")


def test_too_many_form_fields_are_400(client, make_tenant):
    tenant = make_tenant()
    response = client.post(
        f"/{tenant.id}/test/v1/animals", MANY_PARAMETERS, content_type="application/x-www-form-urlencoded"
    )
    assert_refused(response, 400, "too_many_fields")


def test_too_many_uploaded_files_are_400(make_tenant):
    tenant = make_tenant()
    files = {f"f{i}": io.BytesIO(b"x") for i in range(101)}
    response = Client(raise_request_exception=False).post(f"/{tenant.id}/test/v1/animals", files)
    assert_refused(response, 400, "too_many_files")


@override_settings(DATA_UPLOAD_MAX_MEMORY_SIZE=100)
def test_form_fields_past_the_memory_limit_are_413(make_tenant):
    """The body is within the size limit; the form fields Django keeps in memory are not."""
    tenant = make_tenant()
    response = Client(raise_request_exception=False).post(f"/{tenant.id}/test/v1/animals", {"name": "x" * 200})
    assert_refused(response, 413, "request_too_large")


@pytest.mark.parametrize(
    "path",
    [
        f"/{FIVE_THOUSAND_DIGITS}/test/v1/animals",
        "/99999999999999999999/test/v1/animals",
        f"/{{tenant}}/test/v{FIVE_THOUSAND_DIGITS}/animals",
        f"/{{tenant}}/test/v1.{FIVE_THOUSAND_DIGITS}/animals",
        f"/{{tenant}}/test/v1/animals/{FIVE_THOUSAND_DIGITS}",
    ],
    ids=["tenant", "tenant-past-bigint", "major", "minor", "object"],
)
def test_overlong_numbers_in_the_path_are_404(client, make_tenant, path):
    tenant = make_tenant()
    response = client.get(path.format(tenant=tenant.id))
    assert response.status_code == 404
    assert response.json()["error"]["code"] in {"not_found", "tenant_not_found", "version_not_found"}


def test_overlong_tenant_id_never_reaches_a_module_view_without_a_tenant(client, make_tenant):
    """The middleware and the URL patterns agree on what a tenant id is."""
    tenant = make_tenant()
    response = client.post(f"/{'0' * 19}{tenant.id}/test/v1/animals", {"name": "yak"}, format="json")
    assert_refused(response, 404, "not_found")


@pytest.mark.parametrize("tenant_id", [FIVE_THOUSAND_DIGITS, "9" * 20], ids=["5000-digits", "past-bigint"])
def test_overlong_tenant_id_on_the_operator_migrate_route_is_404(admin_user, tenant_id):
    """An authenticated operator's mistyped id is a 404 like any unknown route, not a 500."""
    client = APIClient()
    client.force_authenticate(admin_user)
    response = client.post(f"/{tenant_id}/migrate")
    assert response.status_code == 404


# Module fields take exactly what the schema says.


def _request_schema(name: str, major: int, component: str) -> dict:
    schema = APIClient().get(f"/schema/{name}/v{major}/", {"format": "json"}).json()
    return {**schema["components"]["schemas"][component], "components": schema["components"]}


EVERY_V1_MODULE = [("test", 1), ("tags", 1), ("notes", 1)]


@pytest.mark.parametrize(
    ("path", "component", "body"),
    [
        ("test/v1/animals", "AnimalInputRequest", {"name": 0}),
        ("test/v2/animals", "AnimalInputRequest", {"name": 0}),
        ("test/v2/animals", "AnimalInputRequest", {"name": "yak", "species": 7}),
        ("tags/v1/tags", "TagRequest", {"animal": 1, "label": 0}),
        ("tags/v1/tags", "TagRequest", {"animal": True, "label": "big"}),
        ("tags/v1/tags", "TagRequest", {"animal": "1", "label": "big"}),
        ("notes/v1/notes", "NoteRequest", {"tag": 1, "text": 1.5}),
    ],
)
def test_values_of_the_wrong_json_type_are_400_as_the_schema_says(client, make_tenant, path, component, body):
    name, major = path.split("/")[0], int(path.split("/")[1][1:])
    tenant = make_tenant(modules=EVERY_V1_MODULE if major == 1 else [("test", 2)])
    if major == 1:
        # Rows for the ids the bodies name, so that only a type is wrong.
        animal = client.post(f"/{tenant.id}/test/v1/animals", {"name": "yak"}, format="json").json()
        client.post(f"/{tenant.id}/tags/v1/tags", {"animal": animal["id"], "label": "big"}, format="json")
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(body, _request_schema(name, major, component))
    assert_refused(client.post(f"/{tenant.id}/{path}", body, format="json"), 400, "invalid")


def test_a_form_gives_ids_as_text(client, make_tenant):
    tenant = make_tenant(modules=EVERY_V1_MODULE)
    animal = client.post(f"/{tenant.id}/test/v1/animals", {"name": "yak"}, format="json").json()
    response = client.post(f"/{tenant.id}/tags/v1/tags", {"animal": str(animal["id"]), "label": "big"})
    assert response.status_code == 201


@pytest.mark.parametrize(
    "name",
    ["yak", "\u001e", " \u001e ", "\u00a0", " ", "\t\n", "", "a\x00", "\x00", "  yak  ", "x" * 255, " " + "x" * 255],
)
def test_the_api_accepts_a_name_exactly_when_the_schema_does(client, make_tenant, name):
    tenant = make_tenant()
    valid = jsonschema.Draft202012Validator(_request_schema("test", 1, "AnimalInputRequest")).is_valid({"name": name})
    response = client.post(f"/{tenant.id}/test/v1/animals", {"name": name}, format="json")
    assert response.status_code == (201 if valid else 400), (valid, response.content)


def test_surrounding_whitespace_is_trimmed_from_what_is_stored(client, make_tenant):
    tenant = make_tenant()
    response = client.post(f"/{tenant.id}/test/v1/animals", {"name": "  yak\n"}, format="json")
    assert response.json()["name"] == "yak"
