"""ASGI entry point."""

from __future__ import annotations

import os
import sys

from django.core.asgi import get_asgi_application

from m3saas.conf import ConfigError

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "m3saas.settings")
try:
    application = get_asgi_application()
except ConfigError as exc:
    sys.stderr.write(f"M3SaaS cannot start: {exc}\n")
    raise SystemExit(2) from None
