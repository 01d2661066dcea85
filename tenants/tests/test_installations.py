"""Two installations (two master databases) on one database server, as operators run them:
each keeps its own tenants; the second never takes over the first's database of the same
tenant id and name, nor changes its account."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from django.conf import settings

ROOT = Path(__file__).resolve().parents[2]
SHARED_ID, OWN_ID = 4242, 4343

CREATE = """
from subscriptions.models import Module, Subscription
from tenants.models import Tenant
tenant = Tenant.objects.create(id={id}, name="{name}", user="{name}", password="{password}")
Subscription.objects.create(tenant=tenant, module=Module.objects.get_or_create(name="test")[0], version=1)
"""
REQUEST = """
from django.test import Client
response = Client().get("/{id}/test/v1/animals")
print("status", response.status_code, "secret" if b"first's secret" in response.content else "")
"""
WRITE = """
from m3saas.tenancy.context import use_tenant
from modules.test.v1.models import Animal
from tenants.selectors import tenant_info_get
with use_tenant(tenant_info_get(tenant_id={id})):
    Animal.objects.create(name="{name}")
"""

Manage = Callable[..., subprocess.CompletedProcess[str]]


def _installation(tmp_path: Path, label: str, master: str) -> Manage:
    """`manage.py` of an installation with its own master database and salt (same server)."""
    db = settings.M3SAAS_CONFIG.database
    if settings.M3SAAS_CONFIG.is_mysql:
        database = {"host": db.host, "port": db.port, "database": master, "user": db.user, "password": db.password}
    else:
        database = {"backend": "sqlite", "database": str(tmp_path / f"{master}.sqlite3")}
    config = tmp_path / f"{label}.json"
    config.write_text(json.dumps({"dbSalt": f"salt-{label}", "tenants": {"database": database}}))
    # One VAR_DIR: on SQLite both installations keep tenant databases in the same folder.
    env = {**os.environ, "CONFIG_FILE": str(config), "VAR_DIR": str(tmp_path / "var"), "SECRET_KEY": "x"}
    env["MODULE_API_ACCESS"] = "public"  # installations are under test here, not keys
    env.pop("DJANGO_SETTINGS_MODULE", None)
    env.pop("AUTO_MIGRATION", None)

    def manage(*args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
        )
        if ok:
            assert done.returncode == 0, done.stderr[-2000:]
        return done

    return manage


def _root() -> object:
    import MySQLdb

    db = settings.M3SAAS_CONFIG.database
    return MySQLdb.connect(host=db.host, port=db.port, user=db.user, password=db.password)


def _answer(manage: Manage, tenant_id: int) -> str:
    """What a request to the tenant's `test` API answers in that installation (status, secret seen)."""
    out = manage("shell", "-c", REQUEST.format(id=tenant_id)).stdout
    return next(line for line in out.splitlines() if line.startswith("status ")).strip()


def _tenant_login_works(name: str, salt: str, password: str) -> bool:
    """Whether the tenant's account still accepts the password its own installation gave it."""
    import MySQLdb

    db = settings.M3SAAS_CONFIG.database
    secret = hashlib.sha256(f"{salt}{password}".encode()).hexdigest()
    try:
        MySQLdb.connect(host=db.host, port=db.port, user=name, password=secret, database=name).close()
    except MySQLdb.OperationalError:
        return False
    return True


@pytest.fixture
def two_installations(tmp_path: Path) -> Iterator[tuple[Manage, Manage, str, str]]:
    suffix = uuid.uuid4().hex[:10]
    masters = (f"m3first_{suffix}", f"m3second_{suffix}")
    shared, own = f"tshared_{suffix}", f"tsecond_{suffix}"
    if settings.M3SAAS_CONFIG.is_mysql:
        root = _root()
        with root.cursor() as cur:  # type: ignore[attr-defined]
            for master in masters:
                cur.execute(f"CREATE DATABASE `{master}`")
    try:
        yield _installation(tmp_path, "first", masters[0]), _installation(tmp_path, "second", masters[1]), shared, own
    finally:
        if settings.M3SAAS_CONFIG.is_mysql:
            with root.cursor() as cur:  # type: ignore[attr-defined]
                for name in (*masters, shared, own):
                    cur.execute(f"DROP DATABASE IF EXISTS `{name}`")
                for name in (shared, own):
                    cur.execute("DROP USER IF EXISTS %s@'%%'", (name,))
            root.close()  # type: ignore[attr-defined]


def test_a_second_installation_never_takes_over_the_first_ones_tenant_database(two_installations):
    first, second, shared, own = two_installations
    for manage in (first, second):
        manage("migrate", "-v0")
    first("shell", "-c", CREATE.format(id=SHARED_ID, name=shared, password="first-pw"))
    first("migrate_tenants")
    first("shell", "-c", WRITE.format(id=SHARED_ID, name="first's secret"))
    # The second installation registers a tenant of the same id and name, and one of its own.
    second("shell", "-c", CREATE.format(id=SHARED_ID, name=shared, password="second-pw"))
    second("shell", "-c", CREATE.format(id=OWN_ID, name=own, password="own-pw"))

    refused = second("migrate_tenants", ok=False)

    assert refused.returncode != 0
    reason = next(line for line in refused.stderr.splitlines() if shared in line and "FAILED" in line)
    assert "belongs to another M3SaaS installation on this server" in reason
    assert "1 of 2 tenants migrated." in refused.stdout
    if settings.M3SAAS_CONFIG.is_mysql:
        assert _tenant_login_works(shared, "salt-first", "first-pw")
        assert not _tenant_login_works(shared, "salt-second", "second-pw")
    # Each installation keeps serving its own tenants; the second never serves the first's data.
    assert _answer(first, SHARED_ID) == "status 200 secret"
    assert _answer(second, OWN_ID) == "status 200"
    assert _answer(second, SHARED_ID) == "status 503"
    # A rerun (and a rerun of the failed) refuses again, and still changes nothing.
    assert second("migrate_tenants", "--failed", ok=False).returncode != 0
    assert _answer(first, SHARED_ID) == "status 200 secret"
