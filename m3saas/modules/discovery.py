"""Find `modules/<name>/v<N>/` folders; pure filesystem code, safe to call from settings."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from m3saas.modules.versions import module_label

MODULE_NAME_RE = re.compile(r"^[a-z][a-z0-9_]{0,47}$")
VERSION_DIR_RE = re.compile(r"^v([1-9][0-9]*)$")
REQUIRED_FILES = ("apps.py", "urls.py")
_IGNORED = {"__pycache__", "__init__.py"}


@dataclass(frozen=True)
class FoundVersion:
    name: str
    major: int
    path: Path

    @property
    def app_name(self) -> str:
        return f"modules.{self.name}.v{self.major}"

    @property
    def label(self) -> str:
        return module_label(self.name, self.major)


@dataclass(frozen=True)
class Problem:
    path: Path
    message: str
    hint: str


def scan_modules(modules_dir: Path) -> tuple[list[FoundVersion], list[Problem]]:
    """Return the well-formed module versions under `modules_dir` and what is wrong with the rest."""
    found: list[FoundVersion] = []
    problems: list[Problem] = []
    if not modules_dir.is_dir():
        return found, problems
    for module_dir in sorted(modules_dir.iterdir()):
        if module_dir.name in _IGNORED or module_dir.name.startswith(".") or not module_dir.is_dir():
            continue
        if not MODULE_NAME_RE.fullmatch(module_dir.name):
            problems.append(
                Problem(
                    module_dir,
                    f"module folder '{module_dir.name}' is not a valid module name",
                    "Rename it to lower-case letters, digits and underscores, starting with a letter.",
                )
            )
            continue
        for version_dir in sorted(module_dir.iterdir()):
            if version_dir.name in _IGNORED or version_dir.name.startswith(".") or not version_dir.is_dir():
                continue
            match = VERSION_DIR_RE.fullmatch(version_dir.name)
            if not match:
                problems.append(
                    Problem(
                        version_dir,
                        f"'{version_dir.name}' is not a version folder",
                        "Name version folders 'v' and the major version: v1, v4, v64 "
                        "(not 1, V1, v1.1 or v1z); sub-versions such as 1.4 are served by v1.",
                    )
                )
                continue
            missing = [f for f in REQUIRED_FILES if not (version_dir / f).is_file()]
            if missing:
                problems.append(
                    Problem(
                        version_dir,
                        f"module version folder lacks {', '.join(missing)}",
                        "Every module version needs apps.py (an AppConfig with label "
                        f"'{module_dir.name}_{version_dir.name}') and urls.py (urlpatterns).",
                    )
                )
                continue
            found.append(FoundVersion(module_dir.name, int(match.group(1)), version_dir))
    return found, problems


def discover_module_apps(modules_dir: Path) -> list[str]:
    """Dotted app names of the well-formed module versions, for INSTALLED_APPS."""
    found, _ = scan_modules(modules_dir)
    return [v.app_name for v in found]
