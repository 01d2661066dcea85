"""`sub_directory` prefixes every route, end to end in a fresh process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from cryptography.fernet import Fernet

ROOT = Path(__file__).resolve().parents[1]

SCRIPT = """
from django.test import Client
from tenants.services import tenant_create
from subscriptions.models import Module, Subscription
tenant = tenant_create(name="sub_dir_tenant", user="sub_dir_tenant", password="pw", provision=False)
Subscription.objects.create(tenant=tenant, module=Module.objects.create(name="test"), version=1)
from tenants.selectors import tenant_info_from_row
from tenants.services import tenant_provision
tenant_provision(tenant=tenant_info_from_row(tenant))
from tenants.api_keys import api_key_create
client = Client(HTTP_AUTHORIZATION=f"Bearer {api_key_create(tenant=tenant)[1]}")
prefixed = client.get(f"/api/{tenant.id}/test/v1/animals").status_code
bare = client.get(f"/{tenant.id}/test/v1/animals").status_code
print(prefixed, bare)
"""


def test_sub_directory_prefixes_module_routes(tmp_path):
    config = tmp_path / "config.json"
    config.write_text(
        json.dumps(
            {
                "sub_directory": "/api/",
                "dbSalt": "salt",
                "tenantPasswordKeys": [Fernet.generate_key().decode()],
                "tenants": {"database": {"backend": "sqlite", "database": str(tmp_path / "master.sqlite3")}},
            }
        )
    )
    env = {**os.environ, "CONFIG_FILE": str(config), "VAR_DIR": str(tmp_path), "SECRET_KEY": "x"}
    env.pop("DJANGO_SETTINGS_MODULE", None)

    def manage(*args: str) -> str:
        result = subprocess.run(
            [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
        )
        assert result.returncode == 0, result.stderr
        return result.stdout

    manage("migrate", "-v0")
    assert manage("shell", "-c", SCRIPT).strip().splitlines()[-1] == "200 404"
