"""OpenAPI 3 schemas per module version, valid, with browsable docs served offline."""

from __future__ import annotations

import re

import pytest
from drf_spectacular.validation import validate_schema
from rest_framework.test import APIClient

from m3saas.modules.registry import module_versions

pytestmark = [pytest.mark.django_db, pytest.mark.module_apis_public]

MODULE_VERSIONS = sorted(module_versions())


@pytest.fixture
def client() -> APIClient:
    return APIClient()


def _schema(client: APIClient, name: str, major: int) -> dict:
    response = client.get(f"/schema/{name}/v{major}/", {"format": "json"})
    assert response.status_code == 200
    return response.json()


def test_index_lists_every_module_version(client):
    body = client.get("/schema/").json()
    listed = {(m["module"], m["version"]) for m in body["modules"]}
    assert listed == set(MODULE_VERSIONS)


@pytest.mark.parametrize(("name", "major"), MODULE_VERSIONS)
def test_schema_of_each_module_version_is_valid_openapi_3(client, name, major):
    schema = _schema(client, name, major)
    assert schema["openapi"].startswith("3.")
    validate_schema(schema)


@pytest.mark.parametrize(("name", "major"), MODULE_VERSIONS)
def test_schema_holds_only_its_module_version(client, name, major):
    paths = _schema(client, name, major)["paths"]
    assert paths
    assert all(p.startswith(f"/{{tenant_id}}/{name}/v{{version}}/") for p in paths)
    tags = {tag for item in paths.values() for op in item.values() if isinstance(op, dict) for tag in op["tags"]}
    assert tags == {f"{name} v{major}"}


def test_schema_info_carries_the_major_version(client):
    v1 = _schema(client, "test", 1)["info"]
    v2 = _schema(client, "test", 2)["info"]
    assert (v1["version"], v2["version"]) == ("1", "2")


def _path_parameters(schema: dict) -> dict[str, dict]:
    found: dict[str, dict] = {}
    for item in schema["paths"].values():
        for op in item.values():
            for parameter in op.get("parameters", []) if isinstance(op, dict) else []:
                if parameter["in"] == "path":
                    found[parameter["name"]] = parameter
    return found


def test_tenant_id_and_version_are_documented_path_parameters(client):
    parameters = _path_parameters(_schema(client, "test", 1))
    assert parameters["tenant_id"]["schema"]["type"] == "integer"
    assert parameters["tenant_id"]["description"]
    version = parameters["version"]
    assert version["schema"]["type"] == "string"
    assert re.match(version["schema"]["pattern"], "1.4")
    assert not re.match(version["schema"]["pattern"], "10")
    assert version["description"]


def test_errors_are_documented_with_the_error_shape(client):
    schema = _schema(client, "test", 1)
    operation = schema["paths"]["/{tenant_id}/test/v{version}/animals"]["get"]
    error = operation["responses"]["404"]["content"]["application/json"]["schema"]
    assert set(error["required"]) == {"error"}


def test_yaml_is_the_default_format(client):
    response = client.get("/schema/test/v1/")
    assert response.status_code == 200
    assert response.content.startswith(b"openapi: 3.")


@pytest.mark.parametrize("page", ["docs", "redoc"])
def test_docs_page_uses_only_local_assets(client, page):
    response = client.get(f"/schema/test/v1/{page}/")
    assert response.status_code == 200
    html = response.content.decode()
    assert "/schema/test/v1/" in html
    assets = re.findall(r'(?:src|href)="([^"]+\.(?:js|css|png))"', html)
    assert assets
    for asset in assets:
        assert asset.startswith("/static/"), asset
        assert client.get(asset).status_code == 200, asset
