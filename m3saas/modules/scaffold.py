"""Generate module versions: a new module's `v1` from templates, or `vN` as a renamed copy of `vM`.

A new version's initial migration is made by a child Python process, because only a process
started after the folder exists has the new app installed (module apps are discovered when
the settings load). It runs Django's autodetector for the new app alone and adds the views
(`m3saas.db_views.CreateView`) the source version's migrations leave in place.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from string import Template
from typing import Any

from django.apps import apps
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db.migrations.autodetector import MigrationAutodetector
from django.db.migrations.loader import MigrationLoader
from django.db.migrations.questioner import NonInteractiveMigrationQuestioner
from django.db.migrations.state import ProjectState
from django.db.migrations.writer import MigrationWriter

from m3saas.conf import BASE_DIR
from m3saas.db_views import ChangeView, CreateView, DropView
from m3saas.exceptions import ApplicationError
from m3saas.identifiers import validate_module_name
from m3saas.modules.discovery import VERSION_DIR_RE
from m3saas.modules.versions import module_label

TEMPLATES_DIR = Path(__file__).resolve().parent / "templates" / "module"
TEMPLATE_SUFFIX = "-tpl"
# First path segments after the tenant id that belong, or may one day belong, to the platform.
RESERVED_ROUTES = frozenset({"migrate", "admin", "health", "schema", "docs", "static", "media", "api"})
# Files of a source version not carried into a copy: its history and its own data step.
_NOT_COPIED = {"__pycache__", "upgrade.py"}
_TEXT_SUFFIXES = {".py", ".json", ".md", ".txt", ".sql", ".html", ".yaml", ".yml", ".cfg", ".toml"}
_VERSION_RE = re.compile(r"^[1-9][0-9]*$")


class ScaffoldError(ApplicationError):
    code = "scaffold_refused"
    default_message = "The module version cannot be created."


@dataclass(frozen=True)
class Scaffolded:
    name: str
    major: int
    path: Path
    from_major: int | None
    migration: Path | None
    review: list[str]

    @property
    def label(self) -> str:
        return module_label(self.name, self.major)


def camel(name: str) -> str:
    return "".join(part[:1].upper() + part[1:] for part in name.split("_") if part)


def modules_dir() -> Path:
    return Path(settings.MODULES_DIR)


def module_name_validate(name: str) -> None:
    """Refuse a module name that is unsafe, shadows a platform route or clashes with an app."""
    try:
        validate_module_name(name)
    except ValidationError as exc:
        raise ScaffoldError(" ".join(exc.messages)) from None
    if name in RESERVED_ROUTES:
        raise ScaffoldError(
            f"'{name}' would shadow the platform route /{{tenant_id}}/{name}; "
            f"reserved: {', '.join(sorted(RESERVED_ROUTES))}."
        )
    taken: set[str] = set()
    for config in apps.get_app_configs():
        if config.name.startswith("modules."):
            continue
        taken.add(config.label)
        taken.update(config.name.split("."))
    taken.add("modules")
    if name in taken:
        raise ScaffoldError(f"'{name}' is already a Django app or Python package of the project; choose another name.")


def version_parse(text: str) -> int:
    """A major version as given to `--version`/`--from`: `2`, never `1.1`, `V2`, `v2` or `0`."""
    if not _VERSION_RE.match(text.strip()):
        raise ScaffoldError(f"'{text}' is not a major version: give a whole number from 1, such as 2.")
    return int(text)


def existing_versions(name: str) -> list[int]:
    folder = modules_dir() / name
    if not folder.is_dir():
        return []
    return sorted(int(m.group(1)) for p in folder.iterdir() if p.is_dir() and (m := VERSION_DIR_RE.match(p.name)))


def _render_templates(target: Path, context: dict[str, str]) -> None:
    for source in sorted(TEMPLATES_DIR.rglob(f"*{TEMPLATE_SUFFIX}")):
        relative = source.relative_to(TEMPLATES_DIR)
        if relative.name == f"upgrade.py{TEMPLATE_SUFFIX}":
            continue
        destination = target / str(relative)[: -len(TEMPLATE_SUFFIX)]
        destination.parent.mkdir(parents=True, exist_ok=True)
        destination.write_text(Template(source.read_text(encoding="utf-8")).substitute(context), encoding="utf-8")


def _context(name: str, major: int) -> dict[str, str]:
    return {"name": name, "major": str(major), "label": module_label(name, major), "camel": camel(name)}


def rename_rules(name: str, old: int, new: int) -> list[tuple[re.Pattern[str], str]]:
    """What a copy of v`old` rewrites to become v`new`: dotted and path names, label, class names, URLs."""
    n, c = re.escape(name), re.escape(camel(name))
    tail = r"(?![0-9])"
    return [
        (re.compile(rf"\bmodules\.{n}\.v{old}{tail}"), f"modules.{name}.v{new}"),
        (re.compile(rf"\bmodules/{n}/v{old}{tail}"), f"modules/{name}/v{new}"),
        (re.compile(rf"(?<![A-Za-z0-9_]){n}_v{old}{tail}"), f"{name}_v{new}"),
        (re.compile(rf"(?<![A-Za-z0-9_]){c}V{old}{tail}"), f"{camel(name)}V{new}"),
        (re.compile(rf"/{n}/v{old}{tail}"), f"/{name}/v{new}"),
        (re.compile(rf"""\((["']){n}\1,\s*{old}\)"""), f'("{name}", {new})'),
        (re.compile(rf"(?<![A-Za-z0-9_]){n} v{old}{tail}"), f"{name} v{new}"),
    ]


def rename_text(text: str, rules: list[tuple[re.Pattern[str], str]]) -> str:
    for pattern, replacement in rules:
        text = pattern.sub(replacement, text)
    return text


def _shown(path: Path) -> Path:
    return path.relative_to(BASE_DIR) if path.is_relative_to(BASE_DIR) else path


def _copy_version(source: Path, target: Path, name: str, old: int, new: int) -> list[str]:
    """Copy `source` to `target` renamed; return `file:line` of mentions of v`old` left to review."""
    rules = rename_rules(name, old, new)
    leftover = re.compile(rf"(?<![A-Za-z0-9_.]){re.escape(name)}\S*v{old}(?![0-9])|\bv{old}(?![0-9.])")
    review: list[str] = []
    for path in sorted(source.rglob("*")):
        relative = path.relative_to(source)
        if any(part in _NOT_COPIED for part in relative.parts) or path.suffix == ".pyc":
            continue
        if relative.parts[0] == "migrations" and path.name != "__init__.py":
            continue
        destination = target / relative
        if path.is_dir():
            destination.mkdir(parents=True, exist_ok=True)
            continue
        destination.parent.mkdir(parents=True, exist_ok=True)
        if path.suffix not in _TEXT_SUFFIXES:
            shutil.copy2(path, destination)
            continue
        text = rename_text(path.read_text(encoding="utf-8"), rules)
        destination.write_text(text, encoding="utf-8")
        shown = _shown(destination)
        for number, line in enumerate(text.splitlines(), start=1):
            if leftover.search(line):
                review.append(f"{shown}:{number}: {line.strip()}")
    (target / "migrations").mkdir(exist_ok=True)
    (target / "migrations" / "__init__.py").touch()
    return review


def _write_initial_migration(name: str, major: int, from_major: int | None) -> Path:
    """Make the new version's initial migration in a child process that has the new app installed."""
    code = (
        "import django; django.setup(); "
        "from m3saas.modules.scaffold import initial_migration_write; "
        f"print(initial_migration_write(name={name!r}, major={major}, from_major={from_major!r}))"
    )
    env = dict(os.environ)
    env.setdefault("DJANGO_SETTINGS_MODULE", "m3saas.settings")
    done = subprocess.run(  # noqa: S603 - our own interpreter, fixed code
        [sys.executable, "-c", code], cwd=BASE_DIR, env=env, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise ScaffoldError(f"The initial migration of {name}_v{major} could not be made:\n{done.stderr.strip()}")
    return _shown(Path(done.stdout.strip().splitlines()[-1]))


def initial_migration_write(*, name: str, major: int, from_major: int | None = None) -> str:
    """Write `<name>_v<major>`'s initial migration; the app must be installed in this process.

    With `from_major`, the views left by that version's migrations are created too, renamed.
    """

    label = module_label(name, major)
    loader = MigrationLoader(None, ignore_no_migrations=True)
    if loader.graph.leaf_nodes(label):
        raise ScaffoldError(f"{label} has migrations already.")
    autodetector = MigrationAutodetector(
        loader.project_state(),
        ProjectState.from_apps(apps),
        NonInteractiveMigrationQuestioner(specified_apps={label}, dry_run=False),
    )
    changes = autodetector.changes(
        graph=loader.graph, trim_to_apps={label}, convert_apps={label}, migration_name="initial"
    )
    migrations = changes.get(label)
    if not migrations:
        raise ScaffoldError(f"{label} has no models to migrate.")
    if from_major is not None:
        source = module_label(name, from_major)
        views: dict[str, Any] = {}
        leaves = loader.graph.leaf_nodes(source)
        for node in loader.graph.forwards_plan(leaves[0]) if leaves else []:
            if node[0] != source:
                continue
            for operation in loader.graph.nodes[node].operations:
                if isinstance(operation, (CreateView, ChangeView)):
                    views[operation.name] = operation.query
                elif isinstance(operation, DropView):
                    views.pop(operation.name, None)
        rules = rename_rules(name, from_major, major)
        for view, query in views.items():
            renamed = (
                rename_text(query, rules)
                if isinstance(query, str)
                else {vendor: rename_text(sql, rules) for vendor, sql in query.items()}
            )
            operations = [*migrations[-1].operations, CreateView(rename_text(view, rules), renamed)]
            setattr(migrations[-1], "operations", operations)  # noqa: B010 - an instance attribute, as makemigrations does
    path = ""
    for migration in migrations:
        writer = MigrationWriter(migration)
        Path(writer.path).write_text(writer.as_string(), encoding="utf-8")
        path = writer.path
    return path


def module_scaffold(*, name: str, version: int | None = None, from_version: int | None = None) -> Scaffolded:
    """Create `modules/<name>/v1/` from the templates, or with `version`, `vN` copied from `vM`."""
    try:
        validate_module_name(name)
    except ValidationError as exc:
        raise ScaffoldError(" ".join(exc.messages)) from None
    module_dir = modules_dir() / name
    versions = existing_versions(name)
    if version is None or (version == 1 and not versions):
        if from_version is not None:
            raise ScaffoldError("--from needs --version: a new module starts from the templates.")
        module_name_validate(name)
        if module_dir.exists():
            raise ScaffoldError(
                f"Module '{name}' exists already ({module_dir}); "
                f"add a version with --version {max(versions, default=1) + 1}."
            )
        target = module_dir / "v1"
        target.mkdir(parents=True)
        try:
            (module_dir / "__init__.py").touch()
            _render_templates(target, _context(name, 1))
            migration = _write_initial_migration(name, 1, None)
        except BaseException:
            shutil.rmtree(module_dir, ignore_errors=True)
            raise
        return Scaffolded(name=name, major=1, path=target, from_major=None, migration=migration, review=[])

    if not versions:
        raise ScaffoldError(f"No module '{name}' under {modules_dir()}: create it first with `startmodule {name}`.")
    if version in versions:
        raise ScaffoldError(f"Module '{name}' has v{version} already ({module_dir / f'v{version}'}).")
    source_major = from_version if from_version is not None else max(versions)
    if source_major not in versions:
        raise ScaffoldError(
            f"Module '{name}' has no v{source_major} to copy (it has {', '.join(f'v{v}' for v in versions)})."
        )
    target = module_dir / f"v{version}"
    try:
        review = _copy_version(module_dir / f"v{source_major}", target, name, source_major, version)
        context = _context(name, version)
        (target / "upgrade.py").write_text(
            Template((TEMPLATES_DIR / f"upgrade.py{TEMPLATE_SUFFIX}").read_text(encoding="utf-8")).substitute(context),
            encoding="utf-8",
        )
        migration = _write_initial_migration(name, version, source_major)
    except BaseException:
        shutil.rmtree(target, ignore_errors=True)
        raise
    return Scaffolded(
        name=name, major=version, path=target, from_major=source_major, migration=migration, review=review
    )
