"""The seed-file format: where a database's seed files are, and reading them into blocks.

A seed file is JSON: an object, or a list of them, each
`{"model": "<app_label>.<model_name>", "main": [records], "temporary": [records]}`. A record
maps field names (or `<field>_id` for foreign keys) to values; foreign keys are given by the
related primary key. Main records carry `id` and may carry `"__forced": true`.

Master seeds are the `*.json` of `settings.MASTER_SEEDS_DIR` (the demo's `fixtures/demo/`
with the embedded default, `fixtures/` with a config file); a tenant's are
`modules/<name>/v<N>/fixtures/*.json` of each module version it has,
dependencies first; each folder sorted by file name.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.conf import settings

from m3saas.bookkeeping.models import SeedRecord
from m3saas.conf import BASE_DIR
from m3saas.exceptions import ApplicationError
from m3saas.modules.registry import module_version_get
from m3saas.tenancy.info import TenantInfo

FORCED_KEY = "__forced"
BLOCK_KEYS = frozenset({"model", "main", "temporary"})
MAIN = SeedRecord.Kind.MAIN
TEMPORARY = SeedRecord.Kind.TEMPORARY


class SeedError(ApplicationError):
    """A seed cannot be applied; the message names the file, the record and the reason."""

    status_code = 500
    code = "seed_failed"
    default_message = "The seeds could not be applied."

    def __init__(
        self,
        reason: str,
        *,
        file: str = "",
        model: str = "",
        kind: str = "",
        index: int | None = None,
        record_id: Any = None,
    ) -> None:
        self.reason = reason
        self.file = file
        self.model = model
        self.kind = kind
        self.index = index
        self.record_id = record_id
        where = [part for part in (model, f"{kind}[{index}]" if kind and index is not None else kind) if part]
        if record_id is not None:
            where.append(f"(id {record_id})")
        prefix = ": ".join(part for part in (file, " ".join(where)) if part)
        super().__init__(f"{prefix}: {reason}" if prefix else reason)


def master_seeds_dir() -> Path:
    return Path(settings.MASTER_SEEDS_DIR)


def json_files(directory: Path) -> list[Path]:
    if not directory.is_dir():
        return []
    return sorted((p for p in directory.glob("*.json") if p.is_file()), key=lambda p: p.name)


def seed_files(tenant: TenantInfo | None) -> list[Path]:
    if tenant is None:
        return json_files(master_seeds_dir())
    files: list[Path] = []
    for name, major in tenant.modules:
        module = module_version_get(name, major)
        if module is None:
            raise SeedError(f"tenant {tenant.name} has module '{name}' v{major}, which is not installed")
        files.extend(json_files(module.path / "fixtures"))
    return files


def display_path(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(BASE_DIR))
    except ValueError:
        return str(path)


@dataclass
class SeedBlock:
    file: str
    label: str
    main: list[Any]
    temporary: list[Any]


def seed_blocks_read(path: Path) -> list[SeedBlock]:
    shown = display_path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise SeedError(f"cannot be read ({exc.strerror or exc})", file=shown) from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise SeedError(f"not valid JSON ({exc})", file=shown) from None
    items = data if isinstance(data, list) else [data]
    blocks: list[SeedBlock] = []
    for position, item in enumerate(items):
        where = f"{shown}[{position}]" if isinstance(data, list) else shown
        if not isinstance(item, dict):
            raise SeedError(f"a seed block must be an object, not {type(item).__name__}", file=where)
        unknown = sorted(set(item) - BLOCK_KEYS)
        if unknown:
            raise SeedError(
                f"unknown key(s) {', '.join(map(repr, unknown))} (a block has 'model', 'main', 'temporary')",
                file=where,
            )
        label = item.get("model")
        if not isinstance(label, str) or not label:
            raise SeedError("the block has no 'model' (\"<app_label>.<model_name>\")", file=where)
        lists: dict[str, list[Any]] = {}
        for kind in (MAIN, TEMPORARY):
            records = item.get(kind, [])
            if not isinstance(records, list):
                raise SeedError(f"'{kind}' must be a list of records", file=where, model=label)
            lists[kind] = records
        blocks.append(SeedBlock(file=where, label=label, main=lists[MAIN], temporary=lists[TEMPORARY]))
    return blocks
