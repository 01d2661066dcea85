"""The installed module versions, as Django knows them."""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from pathlib import Path

from django.apps import AppConfig, apps

_APP_NAME_RE = re.compile(r"^modules\.(?P<name>[a-z][a-z0-9_]*)\.v(?P<major>[1-9][0-9]*)$")


@dataclass(frozen=True)
class ModuleVersion:
    name: str
    major: int
    label: str
    app_name: str
    path: Path


def _as_module_version(config: AppConfig) -> ModuleVersion | None:
    match = _APP_NAME_RE.match(config.name)
    if not match:
        return None
    return ModuleVersion(
        name=match["name"],
        major=int(match["major"]),
        label=config.label,
        app_name=config.name,
        path=Path(config.path),
    )


@functools.cache
def module_versions() -> dict[tuple[str, int], ModuleVersion]:
    """Installed module versions keyed by `(name, major)`."""
    found = (_as_module_version(c) for c in apps.get_app_configs())
    return {(m.name, m.major): m for m in found if m is not None}


@functools.cache
def module_labels() -> frozenset[str]:
    return frozenset(m.label for m in module_versions().values())


def is_module_label(app_label: str) -> bool:
    return app_label in module_labels()


def module_version_get(name: str, major: int) -> ModuleVersion | None:
    return module_versions().get((name, major))


@functools.cache
def module_names() -> frozenset[str]:
    return frozenset(name for name, _ in module_versions())
