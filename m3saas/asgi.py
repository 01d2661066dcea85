"""ASGI entry point."""

from __future__ import annotations

import os
import sys

import django

from m3saas.conf import ConfigError

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "m3saas.settings")
try:
    django.setup(set_prefix=False)  # as Django's get_asgi_application()
    from m3saas.handlers import ASGIHandler

    application = ASGIHandler()
except ConfigError as exc:
    sys.stderr.write(f"M3SaaS cannot start: {exc}\n")
    raise SystemExit(2) from None
