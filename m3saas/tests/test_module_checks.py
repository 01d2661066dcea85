"""`manage.py check` names malformed module folders and subscriptions without code."""

from __future__ import annotations

from pathlib import Path

import pytest

from m3saas.modules.checks import check_module_folders
from m3saas.modules.discovery import scan_modules


def make_version(root: Path, module: str, folder: str, files: tuple[str, ...] = ("apps.py", "urls.py")) -> Path:
    path = root / module / folder
    path.mkdir(parents=True)
    for name in files:
        (path / name).write_text("")
    return path


@pytest.mark.parametrize("folder", ["1", "V1", "v1.1", "v1z", "v0", "version1"])
def test_malformed_version_folders_are_reported_with_path_and_fix(tmp_path, settings, folder):
    make_version(tmp_path, "zoo", "v1")
    bad = make_version(tmp_path, "zoo", folder)
    settings.MODULES_DIR = tmp_path
    messages = check_module_folders()
    assert len(messages) == 1
    assert str(bad) in messages[0].msg
    assert "v1, v4, v64" in (messages[0].hint or "")


@pytest.mark.parametrize("folder", ["v1", "v4", "v64"])
def test_well_formed_version_folders_are_found(tmp_path, folder):
    make_version(tmp_path, "zoo", folder)
    found, problems = scan_modules(tmp_path)
    assert problems == []
    assert [(v.name, v.major, v.label) for v in found] == [("zoo", int(folder[1:]), f"zoo_{folder}")]


@pytest.mark.parametrize("missing", ["apps.py", "urls.py"])
def test_missing_apps_or_urls_is_reported(tmp_path, settings, missing):
    present = tuple(f for f in ("apps.py", "urls.py") if f != missing)
    path = make_version(tmp_path, "zoo", "v1", present)
    settings.MODULES_DIR = tmp_path
    [message] = check_module_folders()
    assert str(path) in message.msg
    assert missing in message.msg


def test_repository_modules_pass_the_check(settings):
    assert check_module_folders() == []
