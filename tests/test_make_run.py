"""`make run` says where the admin and the API docs are, and those addresses answer."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from django.test import Client

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.django_db
def test_make_run_prints_the_admin_and_api_docs_addresses_that_answer():
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    venv = Path(sys.executable).parent.parent
    plan = subprocess.run(
        ["make", "-n", "run", f"VENV={venv}"], cwd=ROOT, capture_output=True, text=True, timeout=60, check=True
    ).stdout
    admin = re.search(r"Admin: +http://127\.0\.0\.1:8000(/\S*)", plan)
    docs = re.search(r"API docs: +http://127\.0\.0\.1:8000(/\S*)", plan)
    assert admin is not None and docs is not None, plan
    client = Client()
    assert client.get(admin.group(1)).status_code == 302  # to the login page
    assert client.get(docs.group(1), HTTP_ACCEPT="text/html").status_code == 200
    assert client.get("/schema/test/v1/docs/").status_code == 200
