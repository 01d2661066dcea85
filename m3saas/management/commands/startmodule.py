"""Create a module (`modules/<name>/v1/`) or a new major version of one (`--version N`)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import CommandError, CommandParser

from m3saas.commands import PlatformCommand
from m3saas.modules.scaffold import Scaffolded, ScaffoldError, module_scaffold, version_parse


class Command(PlatformCommand):
    help = (
        "Create modules/<name>/v1/ as a working Django app with an example resource, or with "
        "--version N a copy of v<M> (--from M, default the highest) renamed to v<N>."
    )

    def create_parser(self, prog_name: str, subcommand: str, **kwargs: Any) -> CommandParser:
        # Our --version (the module's major version) replaces Django's --version (its own release).
        return super().create_parser(prog_name, subcommand, conflict_handler="resolve", **kwargs)

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name", help="The module's name: its folder under modules/ and its URL segment.")
        parser.add_argument("--version", dest="major", help="Create this major version (a whole number, e.g. 2).")
        parser.add_argument("--from", dest="from_major", help="Copy this major version (default: the highest).")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            major = version_parse(options["major"]) if options["major"] is not None else None
            from_major = version_parse(options["from_major"]) if options["from_major"] is not None else None
            made = module_scaffold(name=options["name"], version=major, from_version=from_major)
        except ScaffoldError as exc:
            raise CommandError(exc.message) from None
        self.stdout.write(self._report(made))

    def _report(self, made: Scaffolded) -> str:
        name, major, label = made.name, made.major, made.label
        lines = []
        if made.from_major is None:
            lines.append(f"Created modules/{name}/v{major}/ (app modules.{name}.v{major}, label {label}).")
        else:
            lines.append(
                f"Created modules/{name}/v{major}/ as a copy of v{made.from_major} (label {label}, "
                "imports, URLs and table names renamed; fresh initial migration)."
            )
        if made.migration is not None:
            lines.append(f"Initial migration: {made.migration}")
        if made.review:
            lines.append(f"Mentions of v{made.from_major} left as they were; review them:")
            lines += [f"  {line}" for line in made.review]
        lines.append("Next steps:")
        if made.from_major is None:
            lines += [
                f'  1. Register the module: add {{"id": <next id>, "name": "{name}"}} to the master seeds '
                "(MASTER_SEEDS_DIR; the demo's fixtures/demo/02_modules.json) and run `manage.py seed`, "
                "or add it in the admin (/admin/subscriptions/module/).",
                '  2. Subscribe a tenant: add {"id": <next id>, "tenant": <tenant id>, "module": <module id>, '
                f'"version": {major}}} to their 03_subscriptions.json, or in the admin '
                "(/admin/subscriptions/subscription/).",
                "  3. Migrate the tenants: `manage.py migrate_tenants` "
                "(or `manage.py migrate --database=<tenant name>`).",
                f"  4. Call it: GET /<tenant id>/{name}/v{major}/items; run its test: "
                f"`.venv/bin/python -m pytest modules/{name} -q`.",
            ]
        else:
            lines += [
                f"  1. Make the breaking change in modules/{name}/v{major}/, then `manage.py makemigrations {label}`.",
                f"  2. Adapt the data step modules/{name}/v{major}/upgrade.py (it copies v<old> rows field by field).",
                f"  3. Move tenants: `manage.py upgrade_subscription <tenant> {name} {major}` "
                f"(or `--all-tenants {name} {major}`); add `--drop-old` once v{made.from_major} is no longer needed.",
            ]
        return "\n".join(lines)
