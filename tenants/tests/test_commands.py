"""Commands as an operator types them: a tenant by id or name, unknown tenants fail, quiet `-v 0`, prompts.

Every command that takes a tenant reads it the same way (`m3saas.commands.tenant_get`); an
unknown tenant is an error before any work (no master backup by `runcrons` first).
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from m3saas.commands import NO_ONE_TO_ANSWER
from modules.test.v1.models import Animal
from subscriptions.models import Subscription
from tenants.backup_files import backup_list, backups_list_all

pytestmark = pytest.mark.django_db
ROOT = Path(__file__).resolve().parents[2]
UNKNOWN = "No tenant with id or name 'nosuch'"


@pytest.fixture(autouse=True)
def backup_dir(settings, tmp_path):
    settings.BACKUP_DIR = tmp_path / "backups"
    return settings.BACKUP_DIR


@pytest.fixture
def tenant(make_tenant):
    return make_tenant(modules=[("test", 1)])


def run(*args: str, **options: Any) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command(*args, stdout=out, stderr=err, **options)
    return out.getvalue(), err.getvalue()


def answering(monkeypatch: pytest.MonkeyPatch, text: str) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO(text))


@pytest.mark.parametrize("by", ["id", "name"])
def test_backup_takes_the_tenant_by_id_or_name(tenant, by):
    out, _ = run("backup", "--tenant", str(getattr(tenant, by)))
    assert [b.database for b in backup_list(database=tenant.name)] == [tenant.name]
    assert out.startswith(f"{tenant.name}: ")


@pytest.mark.parametrize("by", ["id", "name"])
def test_restore_takes_the_tenant_by_id_or_name(tenant, by):
    run("backup", "--tenant", tenant.name)
    Animal.objects.using(tenant.alias).create(name="after the backup")
    out, _ = run("restore", "--tenant", str(getattr(tenant, by)), "--noinput")
    assert "restored from" in out
    assert not Animal.objects.using(tenant.alias).filter(name="after the backup").exists()


@pytest.mark.parametrize("by", ["id", "name"])
def test_listbackups_takes_the_tenant_by_id_or_name(tenant, by):
    run("backup", "--tenant", tenant.name)
    out, _ = run("listbackups", "--database", str(getattr(tenant, by)))
    assert out.startswith(f"{tenant.name} (1):")


@pytest.mark.parametrize("by", ["id", "name"])
def test_seed_takes_the_tenant_by_id_or_name(tenant, by):
    out, _ = run("seed", "--database", str(getattr(tenant, by)))
    assert out.startswith(f"{tenant.name}: main seeds")


def test_runcrons_takes_the_tenant_by_id(tenant, make_tenant, settings):
    settings.BACKUP_REPEAT = "off"  # an SQLite master is not backed up inside the test's transaction
    other = make_tenant(modules=[("test", 1)])
    out, _ = run("runcrons", "--tenant", str(tenant.id), "--now", "2031-01-01")
    assert f"{tenant.name}: " in out
    assert f"{other.name}: " not in out


def test_upgrade_subscription_takes_the_tenant_by_id(tenant):
    run("upgrade_subscription", str(tenant.id), "test", "2")
    assert Subscription.objects.get(tenant_id=tenant.id, module__name="test").version == 2


@pytest.mark.parametrize(
    "args",
    [
        ("backup", "--tenant", "nosuch"),
        ("restore", "--tenant", "nosuch", "--noinput"),
        ("runcrons", "--tenant", "nosuch"),
        ("listbackups", "--database", "nosuch"),
        ("seed", "--database", "nosuch"),
        ("upgrade_subscription", "nosuch", "test", "2"),
    ],
    ids=lambda args: args[0],
)
def test_an_unknown_tenant_is_an_error_on_every_command(args, backup_dir):
    with pytest.raises(CommandError, match=UNKNOWN):
        run(*args)
    assert backups_list_all(directory=backup_dir) == {}  # runcrons: not even the master's backup


def test_an_unknown_numeric_tenant_is_an_error():
    with pytest.raises(CommandError, match="No tenant with id or name '987654'"):
        run("backup", "--tenant", "987654")


@pytest.mark.parametrize("reference", ["²", "①"])
def test_a_tenant_named_by_a_digit_int_cannot_read_is_an_error(reference):
    """`"²".isdigit()` is true but `int("²")` raises: a one-line CommandError, not a ValueError."""
    with pytest.raises(CommandError, match=f"No tenant with id or name '{reference}'"):
        run("backup", "--tenant", reference)


def test_listbackups_of_a_deleted_tenant_still_lists_its_folder(tenant):
    run("backup", "--tenant", tenant.name)
    from tenants.models import Tenant

    Tenant.objects.filter(pk=tenant.id).delete()
    out, _ = run("listbackups", "--database", tenant.name)
    assert out.startswith(f"{tenant.name} (1):")


def test_verbosity_zero_prints_nothing_on_stdout(tenant):
    out, err = run("backup", "--tenant", tenant.name, verbosity=0)
    assert (out, err) == ("", "")
    assert len(backup_list(database=tenant.name)) == 1
    out, err = run("migrate_tenants", verbosity=0)
    assert (out, err) == ("", "")


def test_restore_asks_and_a_no_changes_nothing(tenant, monkeypatch):
    run("backup", "--tenant", tenant.name)
    Animal.objects.using(tenant.alias).create(name="kept")
    answering(monkeypatch, "no\n")
    with pytest.raises(CommandError, match="Cancelled: nothing was changed"):
        run("restore", "--tenant", tenant.name)
    assert Animal.objects.using(tenant.alias).filter(name="kept").exists()


def test_restore_goes_ahead_on_yes(tenant, monkeypatch):
    run("backup", "--tenant", tenant.name)
    Animal.objects.using(tenant.alias).create(name="dropped")
    answering(monkeypatch, "yes\n")
    out, _ = run("restore", "--tenant", tenant.name)
    assert "Type 'yes' to continue" in out and "restored from" in out
    assert not Animal.objects.using(tenant.alias).filter(name="dropped").exists()


def test_a_prompt_at_the_end_of_stdin_is_a_clear_error(tenant, monkeypatch):
    run("backup", "--tenant", tenant.name)
    answering(monkeypatch, "")
    with pytest.raises(CommandError) as raised:
        run("restore", "--tenant", tenant.name)
    assert str(raised.value) == NO_ONE_TO_ANSWER


def test_drop_old_asks_before_dropping_and_no_changes_nothing(tenant, monkeypatch):
    answering(monkeypatch, "no\n")
    with pytest.raises(CommandError, match="Cancelled"):
        run("upgrade_subscription", tenant.name, "test", "2", "--drop-old")
    assert Subscription.objects.get(tenant_id=tenant.id, module__name="test").version == 1


def test_drop_old_goes_ahead_on_yes(tenant, monkeypatch):
    answering(monkeypatch, "yes\n")
    out, _ = run("upgrade_subscription", tenant.name, "test", "2", "--drop-old")
    assert "old version's tables are DROPPED" in out
    assert Subscription.objects.get(tenant_id=tenant.id, module__name="test").version == 2


def test_drop_old_without_anyone_to_answer_is_a_clear_error(tenant, monkeypatch):
    answering(monkeypatch, "")
    with pytest.raises(CommandError, match="rerun with --noinput"):
        run("upgrade_subscription", "--all-tenants", "test", "2", "--drop-old")
    assert Subscription.objects.get(tenant_id=tenant.id, module__name="test").version == 1


def _manage(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture
def demo_env(tmp_path) -> dict[str, str]:
    """A fresh embedded installation (its own master and demo tenant 1) for `manage.py` runs."""
    env = {k: v for k, v in os.environ.items() if k not in {"CONFIG_FILE", "DJANGO_SETTINGS_MODULE"}}
    env.update(VAR_DIR=str(tmp_path / "var"), SECRET_KEY="commands-tests", LOG_FORMAT="json")
    for args in (["migrate", "-v", "0"], ["seed", "-v", "0"], ["migrate_tenants", "-v", "0"]):
        result = _manage(env, *args)
        assert result.returncode == 0, result.stderr
        assert result.stdout == ""
    return env


def test_manage_py_in_a_script_exits_non_zero_with_one_line(demo_env):
    """Quiet backup, an unknown tenant and a restore with nobody to answer, as a shell script sees them."""
    quiet = _manage(demo_env, "backup", "--tenant", "1", "-v", "0")
    assert (quiet.returncode, quiet.stdout, quiet.stderr) == (0, "", "")
    unknown = _manage(demo_env, "runcrons", "--tenant", "nosuch")
    assert unknown.returncode == 1
    assert unknown.stderr == f"CommandError: {UNKNOWN}.\n" and unknown.stdout == ""
    restore = _manage(demo_env, "restore", "--tenant", "1")
    assert restore.returncode == 1
    assert restore.stderr == f"CommandError: {NO_ONE_TO_ANSWER}\n"
    assert "Traceback" not in restore.stdout + restore.stderr


@pytest.mark.parametrize("command", ["migrate_tenants", "runcrons", "upgrade_subscription"])
def test_every_command_accepts_noinput_for_scripts(command, settings):
    """Not `unrecognized arguments`: a script may pass --noinput to any of them."""
    settings.BACKUP_REPEAT = "off"
    args = ["--all-tenants", "test", "2"] if command == "upgrade_subscription" else []
    assert run(command, *args, "--noinput", verbosity=0) == ("", "")
