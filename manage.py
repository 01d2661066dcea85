#!/usr/bin/env python
"""Django's command-line utility, with tenant aliases registered before options are parsed."""

from __future__ import annotations

import os
import sys


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "m3saas.settings")
    # Imported after the settings module is named; the platform's only after django.setup().
    import django
    from django.core.management import execute_from_command_line

    from m3saas.conf import ConfigError

    try:
        django.setup()
    except ConfigError as exc:
        sys.stderr.write(f"M3SaaS cannot start: {exc}\n")
        raise SystemExit(2) from None
    from m3saas.startup import command_needs_database, master_database_check, one_line_errors
    from m3saas.tenancy.connections import tenant_connections_register_all

    # A master database that does not answer is one line naming it, not a driver traceback.
    with one_line_errors():
        if command_needs_database(sys.argv):
            master_database_check()
        # Database-aware commands fix their --database choices when their parser is built.
        tenant_connections_register_all()
        execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
