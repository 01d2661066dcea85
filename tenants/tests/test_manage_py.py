"""`manage.py migrate --database=<tenant>` as an operator runs it, in a fresh process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from django.conf import settings

ROOT = Path(__file__).resolve().parents[2]

CREATE_TENANT = """
from subscriptions.models import Module, Subscription
from tenants.services import tenant_create
tenant = tenant_create(name="{name}", user="{name}", password="pw", provision=False)
Subscription.objects.create(tenant=tenant, module=Module.objects.get_or_create(name="test")[0], version=1)
"""


@pytest.mark.mariadb
def test_migrate_database_tenant_creates_the_database_then_migrates(tmp_path):
    """Before the first migration the tenant's database and user do not exist yet."""
    import MySQLdb

    db = settings.M3SAAS_CONFIG.database
    suffix = uuid.uuid4().hex[:10]
    master, tenant = f"m3cli_{suffix}", f"tcli_{suffix}"
    config = tmp_path / "config.json"
    config.write_text(
        json.dumps(
            {
                "dbSalt": "cli",
                "tenantPasswordKeys": [Fernet.generate_key().decode()],
                "tenants": {
                    "database": {
                        "host": db.host,
                        "port": db.port,
                        "database": master,
                        "user": db.user,
                        "password": db.password,
                    }
                },
            }
        )
    )
    env = {**os.environ, "CONFIG_FILE": str(config), "VAR_DIR": str(tmp_path), "SECRET_KEY": "x"}
    env.pop("DJANGO_SETTINGS_MODULE", None)

    def manage(*args: str) -> str:
        result = subprocess.run(
            [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
        )
        assert result.returncode == 0, result.stderr[-2000:]
        return result.stdout

    root = MySQLdb.connect(host=db.host, port=db.port, user=db.user, password=db.password)
    try:
        with root.cursor() as cur:
            cur.execute(f"CREATE DATABASE `{master}`")
        manage("migrate", "-v0")
        manage("shell", "-c", CREATE_TENANT.format(name=tenant))
        first = manage("migrate", f"--database={tenant}")
        assert "Applied test_v1.0001_initial" in first
        assert "No migrations to apply." in manage("migrate", f"--database={tenant}")
        assert "[X] 0001_initial" in manage("showmigrations", f"--database={tenant}", "test_v1")
    finally:
        with root.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS `{tenant}`")
            cur.execute(f"DROP DATABASE IF EXISTS `{master}`")
            cur.execute("DROP USER IF EXISTS %s@'%%'", (tenant,))
        root.close()
