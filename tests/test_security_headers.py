"""No page may be framed (clickjacking), and `check --deploy` with the README's production settings is clean.

The deployment check runs in its own process with what the README recommends for production
behind the TLS proxy: a config file, a long random key, DEBUG off and the `.env` block of the
README. A warning it prints must be one the README explains.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from django.test import override_settings
from rest_framework.test import APIClient

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
# The README's production `.env` block is the fenced block right after this line.
PRODUCTION_ENV_MARKER = "Production `.env` behind the TLS proxy:"
# `check --deploy` warnings the README explains (the TLS proxy's job, or not a security matter).
EXPLAINED_WARNINGS = {
    "security.W004",  # HSTS: the TLS proxy sets it, or SECURE_HSTS_SECONDS once HTTPS is certain
    "security.W008",  # HTTPS redirect: the TLS proxy's job (SECURE_SSL_REDIRECT otherwise)
    "drf_spectacular.W001",  # schema documentation gaps of views without a serializer
    "drf_spectacular.W002",
}
SECURITY_HEADERS = {
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cross-Origin-Opener-Policy": "same-origin",
}

pytestmark = [pytest.mark.django_db, pytest.mark.module_apis_public]


def _assert_security_headers(response) -> None:
    assert {name: response.get(name) for name in SECURITY_HEADERS} == SECURITY_HEADERS


def test_admin_pages_may_not_be_framed():
    response = APIClient().get("/admin/login/")
    assert response.status_code == 200
    _assert_security_headers(response)


def test_api_responses_may_not_be_framed(make_tenant):
    tenant = make_tenant()
    client = APIClient(raise_request_exception=False)
    _assert_security_headers(client.get(f"/{tenant.id}/test/v1/animals"))
    _assert_security_headers(client.get("/health"))
    _assert_security_headers(client.get("/no/such/route"))


@override_settings(MAX_REQUEST_BODY_SIZE=10)
def test_errors_written_by_the_error_middleware_carry_the_headers_too():
    response = APIClient().post("/1/test/v1/animals", {"name": "far too long a name"}, format="json")
    assert response.status_code == 413
    _assert_security_headers(response)


def _production_env_from_readme() -> dict[str, str]:
    block = re.search(re.escape(PRODUCTION_ENV_MARKER) + r"\s*```\w*\n(.*?)```", README, flags=re.DOTALL)
    assert block is not None, f"README has no fenced block after {PRODUCTION_ENV_MARKER!r}"
    values = dict(
        line.split("=", 1) for line in block.group(1).splitlines() if line.strip() and not line.startswith("#")
    )
    assert {"SECRET_KEY", "ALLOWED_HOSTS", "SECURE_PROXY_SSL_HEADER"} <= set(values)
    return values


def _warning_ids(output: str) -> set[str]:
    return set(re.findall(r"^\?: \(([\w.]+)\)", output, flags=re.MULTILINE))


def test_check_deploy_with_the_readme_production_settings_warns_only_of_what_the_readme_explains(tmp_path):
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"dbSalt": secrets.token_hex(16), "tenants": {"database": {"backend": "sqlite"}}}))
    env = {k: v for k, v in os.environ.items() if k not in {"DJANGO_SETTINGS_MODULE"} and not k.startswith("SECURE_")}
    env.update(_production_env_from_readme())
    env.update(CONFIG_FILE=str(config), VAR_DIR=str(tmp_path / "var"), SECRET_KEY=secrets.token_urlsafe(50))
    env.update(DEBUG="false")
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "ERROR"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    unexplained = _warning_ids(result.stdout + result.stderr) - EXPLAINED_WARNINGS
    assert not unexplained, result.stdout + result.stderr


@pytest.mark.parametrize("warning", sorted(EXPLAINED_WARNINGS))
def test_readme_explains_each_tolerated_deploy_warning(warning):
    assert warning in README
