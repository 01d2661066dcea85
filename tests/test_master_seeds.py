"""Which master seeds `manage.py seed` applies: the demo's only with the embedded default.

Run as the container runs it: `manage.py` in a fresh process with the real settings, a config
file (SQLite backend, so the test needs no server) or none, and a throw-away `VAR_DIR`.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DEMO_TENANTS = {1: "first_tenant", 2: "second_tenant"}


def _run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result


def _environment(var_dir: Path, **extra: str) -> dict[str, str]:
    unset = {"CONFIG_FILE", "DJANGO_SETTINGS_MODULE", "MASTER_SEEDS_DIR", "AUTO_MIGRATION"}
    env = {k: v for k, v in os.environ.items() if k not in unset}
    env.update(VAR_DIR=str(var_dir), SECRET_KEY="master-seeds-test-key", AUTO_MIGRATION="false")
    env.update(extra)
    return env


@dataclass
class Installation:
    """A master database and the environment `manage.py` runs with."""

    master: Path
    var_dir: Path
    env: dict[str, str] = field(default_factory=dict)

    def manage(self, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
        return _run(list(args), _environment(self.var_dir, **self.env, **env))

    def tenants(self) -> dict[int, str]:
        with sqlite3.connect(self.master) as db:
            return dict(db.execute("SELECT id, name FROM tenants_tenant").fetchall())


@pytest.fixture(scope="module")
def migrated_master(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated, empty master database (SQLite), copied by each test: migrating once is enough."""
    var_dir = tmp_path_factory.mktemp("migrated")
    _run(["migrate", "--noinput"], _environment(var_dir))
    return var_dir / "master.sqlite3"


@pytest.fixture
def embedded(tmp_path: Path, migrated_master: Path) -> Installation:
    """No config file (the embedded default, as `make run`)."""
    var_dir = tmp_path / "var"
    var_dir.mkdir()
    shutil.copy(migrated_master, var_dir / "master.sqlite3")
    return Installation(master=var_dir / "master.sqlite3", var_dir=var_dir)


@pytest.fixture
def deployed(tmp_path: Path, migrated_master: Path) -> Installation:
    """A config file, as a deployment has."""
    master = tmp_path / "master.sqlite3"
    shutil.copy(migrated_master, master)
    config = tmp_path / "config.json"
    config.write_text(
        json.dumps({"dbSalt": "seeds-test", "tenants": {"database": {"backend": "sqlite", "database": str(master)}}})
    )
    return Installation(master=master, var_dir=tmp_path / "var", env={"CONFIG_FILE": str(config)})


def test_seed_with_a_config_file_creates_no_demo_tenant(deployed):
    result = deployed.manage("seed")
    assert "main seeds: 0 inserted, 0 updated (0 file(s))" in result.stdout
    assert deployed.tenants() == {}


def test_seed_with_the_embedded_default_creates_the_demo_tenants(embedded):
    embedded.manage("seed")
    assert embedded.tenants() == DEMO_TENANTS


def test_a_deleted_demo_tenant_does_not_come_back_in_a_deployment(deployed):
    """A deployment seeded by an image that still shipped the demo, then cleaned by its operator."""
    deployed.manage("seed", MASTER_SEEDS_DIR=str(ROOT / "fixtures" / "demo"))
    assert deployed.tenants() == DEMO_TENANTS
    with sqlite3.connect(deployed.master) as db:
        db.execute("DELETE FROM subscriptions_subscription WHERE tenant_id = 2")
        db.execute("DELETE FROM tenants_tenant WHERE id = 2")
    deployed.manage("seed")
    deployed.manage("seed")
    assert deployed.tenants() == {1: "first_tenant"}


def test_a_deployment_seeds_the_operators_seed_directory(deployed, tmp_path):
    seeds = tmp_path / "my-seeds"
    seeds.mkdir()
    (seeds / "01_tenants.json").write_text(
        json.dumps({"model": "tenants.tenant", "main": [{"id": 40, "name": "acme", "user": "acme", "password": "pw"}]})
    )
    result = deployed.manage("seed", MASTER_SEEDS_DIR=str(seeds))
    assert "main seeds: 1 inserted, 0 updated (1 file(s))" in result.stdout
    assert deployed.tenants() == {40: "acme"}


def test_the_image_leaves_the_demo_seeds_out():
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert "fixtures/demo" in ignored
    assert not list((ROOT / "fixtures").glob("*.json")), "the image's fixtures/ is the operator's: no seeds in git"
