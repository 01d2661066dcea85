"""A real browser (Debian's headless `chromium`) renders the admin's pages at 1280 px.

Skipped without Chromium (`apt-get install chromium`; `make system-deps` and `.ci/run` install it),
failed instead under CI=true. The screenshots stay in pytest's temporary directory.
"""

from __future__ import annotations

import secrets
import shutil
import struct
import subprocess
import time
from pathlib import Path
from typing import Any, cast

import pytest
from django.contrib.auth.models import User
from django.urls import clear_url_caches

from conftest import skip_or_fail
from m3saas.traffic import traffic_count
from tenants.models import Tenant, TenantMigrationRun
from tenants.tests.factories import TenantFactory
from tests import browser_urls

pytestmark = pytest.mark.django_db(transaction=True)


def tenant_row(**fields: Any) -> Tenant:
    return cast(Tenant, TenantFactory(**fields))


WIDTH, HEIGHT = 1280, 900


def chromium() -> str:
    found = next((shutil.which(name) for name in ("chromium", "chromium-browser") if shutil.which(name)), None)
    if found is None:
        skip_or_fail("Chromium is not installed: apt-get install chromium (make system-deps does)")
    return found


def screenshot(browser: str, url: str, target: Path, profile: Path) -> Path:
    """`url` rendered by headless Chromium to a PNG at WIDTH by HEIGHT."""
    subprocess.run(
        [
            browser,
            "--headless",
            "--no-sandbox",  # as root in a container; the page is our own
            "--disable-gpu",
            "--hide-scrollbars",
            f"--user-data-dir={profile}",
            f"--window-size={WIDTH},{HEIGHT}",
            f"--screenshot={target}",
            url,
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    return target


def png_size(path: Path) -> tuple[int, int]:
    header = path.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    width, height = struct.unpack(">II", header[16:24])
    return width, height


@pytest.fixture
def browser_site(live_server, settings):
    settings.ROOT_URLCONF = "tests.browser_urls"
    clear_url_caches()
    yield live_server.url
    clear_url_caches()


def login_link(site: str, user: User, next_url: str) -> str:
    token = secrets.token_urlsafe(16)
    browser_urls.LOGIN_TOKENS[token] = user.pk
    return f"{site}/test-login/{token}/?next={next_url}"


def test_admin_pages_render_in_a_real_browser_at_1280_px(browser_site, tmp_path):
    browser = chromium()
    operator = User.objects.create_superuser("operator", "op@example.com", "pw-operator-123")
    for _ in range(12):
        tenant_row(modules=[("test", 1)])
    failed = tenant_row()
    Tenant.objects.filter(pk=failed.pk).update(schema_state=Tenant.SchemaState.FAILED)
    TenantMigrationRun.objects.create(
        tenant=failed, status=TenantMigrationRun.Status.FAILED, error="Access denied for user 'x'@'%'"
    )

    for hours_ago in range(24):  # a day of traffic for the chart: more requests lately, a few errors
        for _ in range(24 - hours_ago):
            traffic_count(tenant_id=failed.pk, status_code=200, now=time.time() - hours_ago * 3600)
        traffic_count(
            tenant_id=failed.pk, status_code=503 if hours_ago % 5 == 0 else 200, now=time.time() - hours_ago * 3600
        )

    shots = {
        "login": screenshot(browser, f"{browser_site}/admin/login/", tmp_path / "login.png", tmp_path / "p1"),
        "tenants": screenshot(
            browser,
            login_link(browser_site, operator, "/admin/tenants/tenant/"),
            tmp_path / "tenants.png",
            tmp_path / "p2",
        ),
        "status": screenshot(
            browser,
            login_link(browser_site, operator, "/admin/tenants/tenant/status/"),
            tmp_path / "status.png",
            tmp_path / "p3",
        ),
    }

    keep = Path(__file__).resolve().parent.parent / "var" / "screenshots"  # to look at
    keep.mkdir(parents=True, exist_ok=True)
    for name, path in shots.items():
        shutil.copyfile(path, keep / f"admin-{name}.png")
    for name, path in shots.items():
        assert path.is_file(), name
        assert png_size(path) == (WIDTH, HEIGHT), name
        assert path.stat().st_size > 10_000, f"{name}: {path.stat().st_size} bytes, an empty page?"
    # The logged-in pages differ from the login page: the session opened them.
    assert shots["tenants"].read_bytes() != shots["login"].read_bytes()
    assert shots["status"].read_bytes() != shots["tenants"].read_bytes()
