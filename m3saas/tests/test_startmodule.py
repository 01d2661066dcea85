"""`startmodule`, used as a module author would: in a copy of the repository, never in this one.

Module apps are discovered when the settings load, so a generated module can only be
checked by new processes running in a copy (never in the real modules/ folder, which every
other test run discovers).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command

from m3saas.conf import BASE_DIR

PYTHON = sys.executable
RUFF = str(Path(sys.executable).with_name("ruff"))
_SKIPPED = shutil.ignore_patterns(
    ".venv", "var", ".git", "__pycache__", ".pytest_cache", ".mypy_cache", ".ruff_cache", "staticfiles", "config.json"
)

BESIDE_V1_TEST = """
from django.core.management import call_command
from django.db import connections
from modules.zoo.v1.models import Item as ItemV1
from modules.zoo.v2.models import Item as ItemV2


def test_v2_migrates_beside_v1_and_takes_its_rows(make_tenant, tenant_client, db):
    tenant = make_tenant(modules=[("zoo", 1)])
    ItemV1.objects.using(tenant.alias).create(name="lion")
    call_command("upgrade_subscription", tenant.name, "zoo", "2")
    tables = set(connections[tenant.alias].introspection.table_names())
    assert {"zoo_v1_item", "zoo_v2_item"} <= tables
    assert ItemV2.objects.using(tenant.alias).filter(name="lion").exists()
    response = tenant_client(tenant).get(f"/{tenant.id}/zoo/v2/items")
    assert response.status_code == 200
    assert "lion" in [item["name"] for item in response.json()["results"]]
"""


def _env(copy: Path, *, database: bool) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in {"DJANGO_SETTINGS_MODULE", "PYTEST_CURRENT_TEST"}}
    env["VAR_DIR"] = str(copy / "var")
    if not database:
        # manage.py reads the master at start-up; the copy's commands need none but their own.
        env.pop("CONFIG_FILE", None)
    elif "CONFIG_FILE" in env:
        env["CONFIG_FILE"] = str((BASE_DIR / env["CONFIG_FILE"]).resolve())
    return env


def run(copy: Path, *args: str, database: bool = False) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        list(args), cwd=copy, env=_env(copy, database=database), capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, f"{' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"
    return done


@pytest.fixture(scope="module")
def repo_copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the repository: `zoo` v1 made by startmodule, v2 by `--version 2`; `test` v3 from v2."""
    copy = tmp_path_factory.mktemp("repo") / "m3saas"
    shutil.copytree(BASE_DIR, copy, ignore=_SKIPPED)
    shutil.rmtree(copy / "modules" / "zoo", ignore_errors=True)
    run(copy, PYTHON, "manage.py", "startmodule", "zoo")
    run(copy, PYTHON, "manage.py", "startmodule", "zoo", "--version", "2")
    run(copy, PYTHON, "manage.py", "startmodule", "test", "--version", "3")
    assert not (BASE_DIR / "modules" / "zoo").exists()
    return copy


def test_v1_is_a_django_app_labelled_zoo_v1(repo_copy):
    v1 = repo_copy / "modules" / "zoo" / "v1"
    for name in ["apps.py", "models.py", "serializers.py", "views.py", "urls.py", "migrations/0001_initial.py"]:
        assert (v1 / name).is_file(), name
    assert list((v1 / "fixtures").glob("*.json"))
    assert list((v1 / "tests").glob("test_*.py"))
    assert 'label = "zoo_v1"' in (v1 / "apps.py").read_text()


def test_generated_modules_pass_check_makemigrations_and_ruff(repo_copy):
    assert "No changes detected" in run(repo_copy, PYTHON, "manage.py", "makemigrations", "zoo_v1").stdout
    run(repo_copy, PYTHON, "manage.py", "check")
    run(repo_copy, PYTHON, "manage.py", "makemigrations", "--check", "--dry-run")
    run(repo_copy, RUFF, "check", "modules/zoo")
    run(repo_copy, RUFF, "format", "--check", "modules/zoo")


def test_version_2_is_renamed_with_its_own_initial_migration(repo_copy):
    v2 = repo_copy / "modules" / "zoo" / "v2"
    assert 'label = "zoo_v2"' in (v2 / "apps.py").read_text()
    assert "class ZooV2Config" in (v2 / "apps.py").read_text()
    assert "modules.zoo.v2.models" in (v2 / "views.py").read_text()
    assert '"zoo_v2.item"' in (v2 / "fixtures" / "01_items.json").read_text()
    assert [p.name for p in (v2 / "migrations").glob("0*.py")] == ["0001_initial.py"]
    assert "modules.zoo.v1" not in "".join(p.read_text() for p in v2.rglob("*.py"))
    assert (v2 / "upgrade.py").is_file()


def test_generated_tests_pass_subscribed_tenant_served_other_404(repo_copy):
    done = run(repo_copy, PYTHON, "-m", "pytest", "modules/zoo", "-q", "-p", "no:cacheprovider", database=True)
    summary = done.stdout.strip().splitlines()[-1]
    assert "20 passed" in summary and "skipped" not in summary, done.stdout


def test_version_2_migrates_beside_v1_in_one_tenant_database(repo_copy, tmp_path):
    test_file = repo_copy / "tests" / f"test_zoo_beside_{tmp_path.name}.py"
    test_file.write_text(BESIDE_V1_TEST)
    done = run(repo_copy, PYTHON, "-m", "pytest", str(test_file), "-q", "-p", "no:cacheprovider", database=True)
    assert "1 passed" in done.stdout


@pytest.fixture
def modules_dir(tmp_path, settings):
    """A throw-away modules folder holding `test` v1 and v2, so a refusal can never write into ours."""
    for version in ("v1", "v2"):
        (tmp_path / "test" / version).mkdir(parents=True)
    settings.MODULES_DIR = tmp_path
    return tmp_path


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("Bad-Name", "not a safe module name"),
        ("9lives", "not a safe module name"),
        ("admin", "shadow the platform route"),
        ("migrate", "shadow the platform route"),
        ("health", "shadow the platform route"),
        ("auth", "already a Django app"),
        ("tenants", "already a Django app"),
        ("rest_framework", "already a Django app"),
        ("test", "exists already"),
    ],
)
def test_startmodule_refuses_bad_names(modules_dir, name, message):
    with pytest.raises(CommandError, match=message):
        call_command("startmodule", name)
    assert sorted(p.name for p in modules_dir.iterdir()) == ["test"]


@pytest.mark.parametrize(
    ("version", "message"),
    [("1.1", "not a major version"), ("V2", "not a major version"), ("0", "not a major version"), ("2", "already")],
)
def test_startmodule_version_refuses_malformed_or_existing(modules_dir, version, message):
    with pytest.raises(CommandError, match=message):
        call_command("startmodule", "test", "--version", version)
    assert sorted(p.name for p in (modules_dir / "test").iterdir()) == ["v1", "v2"]


def test_startmodule_version_of_an_unknown_module_is_refused(modules_dir):
    with pytest.raises(CommandError, match="create it first"):
        call_command("startmodule", "nothing_here", "--version", "2")
    assert not (settings.MODULES_DIR / "nothing_here").exists()


def test_a_copy_keeps_the_views_of_its_source_version(repo_copy):
    migration = (repo_copy / "modules" / "test" / "v3" / "migrations" / "0001_initial.py").read_text()
    assert "m3saas.db_views.CreateView" in migration
    assert "test_v3_animal_stats" in migration and "FROM test_v3_animal " in migration
    done = run(repo_copy, PYTHON, "-m", "pytest", "modules/test/v3", "-q", "-p", "no:cacheprovider", database=True)
    assert "failed" not in done.stdout
