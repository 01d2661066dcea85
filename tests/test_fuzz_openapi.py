"""Fuzzing every module version's OpenAPI schema: no 5xx, and the API does what its schema says.

Schemathesis generates requests from each schema (valid ones and invalid ones) and sends them
in-process to the WSGI application; each response is checked against the schema. The run is
bounded and reproducible: a fixed number of examples per operation, derandomized, no deadline.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import schemathesis
from django.core.handlers.wsgi import WSGIHandler
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from hypothesis import HealthCheck, Phase, given
from hypothesis import settings as hypothesis_settings
from rest_framework.test import APIClient
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    positive_data_acceptance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from m3saas.modules.registry import module_versions

pytestmark = pytest.mark.django_db

EXAMPLES_PER_OPERATION = 40
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    positive_data_acceptance,
    negative_data_rejection,
]
# A tenant holds one major version per module: one tenant per major, subscribed to everything else.
TENANT_MODULES = {
    1: [("test", 1), ("tags", 1), ("notes", 1)],
    2: [("test", 2)],
}


@contextlib.contextmanager
def served_in_process() -> Iterator[WSGIHandler]:
    """The application as a server runs it, minus closing the test's connections between requests.

    Django's test client does the same for each of its requests (and reconnects after it), so
    no test client request may come in between.
    """
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        yield WSGIHandler()
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)


def _schema(name: str, major: int) -> dict[str, Any]:
    """The module version's schema, less its key requirement: every fuzzed request carries the
    tenant's valid key (the key rules themselves are tested in tests/test_api_keys.py)."""
    response = APIClient().get(f"/schema/{name}/v{major}/", {"format": "json"})
    assert response.status_code == 200
    schema: dict[str, Any] = response.json()
    for operations in schema["paths"].values():
        for operation in operations.values():
            operation.pop("security", None)
    return schema


def _existing_references(tenant_id: int, key: str) -> dict[str, int]:
    """Rows that valid requests may name: a schema says an id is an integer, not which ids exist."""
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    animal = client.post(f"/{tenant_id}/test/v1/animals", {"name": "yak"}, format="json").json()
    tag = client.post(f"/{tenant_id}/tags/v1/tags", {"animal": animal["id"], "label": "big"}, format="json").json()
    return {"animal": animal["id"], "tag": tag["id"]}


def _naming_existing_rows(references: dict[str, int]) -> Callable[[Any], Any]:
    def fix(case: Any) -> Any:
        if isinstance(case.body, dict):
            case.body.update({k: v for k, v in references.items() if k in case.body})
        return case

    return fix


def _fuzz(
    operation: Any, mode: GenerationMode, tenant_id: int, references: dict[str, int], key: str, app: WSGIHandler
) -> None:
    strategy = operation.as_strategy(generation_mode=mode, path_parameters={"tenant_id": tenant_id})
    if mode.is_positive:
        strategy = strategy.map(_naming_existing_rows(references))

    @hypothesis_settings(
        max_examples=EXAMPLES_PER_OPERATION,
        deadline=None,
        derandomize=True,
        database=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=strategy)
    def run(case: Any) -> None:
        headers = {"Host": "testserver", "Authorization": f"Bearer {key}"}
        case.call_and_validate(app=app, checks=CHECKS, headers=headers)

    run()


@pytest.mark.parametrize(("name", "major"), sorted(module_versions()))
@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=str)
def test_fuzzed_requests_get_no_5xx_and_match_the_schema(
    name: str, major: int, mode: GenerationMode, make_tenant: Callable[..., Any], tenant_key: Callable[..., str]
) -> None:
    tenant = make_tenant(modules=TENANT_MODULES[1 if name != "test" else major])
    # With the tenant's key, as its software calls it: keys are on, as in production.
    key = tenant_key(tenant)
    references = _existing_references(tenant.id, key) if major == 1 else {}
    schema = schemathesis.openapi.from_dict(_schema(name, major))
    operations = [result.ok() for result in schema.get_all_operations()]  # type: ignore[union-attr]
    assert operations
    with served_in_process() as app:
        for operation in operations:
            _fuzz(operation, mode, tenant.id, references, key, app)
