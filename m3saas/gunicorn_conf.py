"""Gunicorn's settings, read from the environment (`gunicorn --config python:m3saas.gunicorn_conf`).

The container and `make serve` run the same command (bin/docker-entrypoint.sh). Logs go to
stdout as JSON lines, like the application's.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from django.conf import settings

from m3saas.conf import ConfigError

bind = [f"{os.environ.get('BIND_ADDRESS', '0.0.0.0')}:{os.environ.get('PORT', '80')}"]  # noqa: S104
# Processes, each with a few threads: module views mostly wait on their database.
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
worker_class = "gthread"
threads = int(os.environ.get("GUNICORN_THREADS", "4"))
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "30"))
graceful_timeout = 30
# No preload: each worker sets Django up after the fork (database and MQTT connections are per process).
preload_app = False
accesslog = "-"
errorlog = "-"
access_log_format = '%(h)s "%(r)s" %(s)s %(b)s %(M)sms'

logconfig_dict = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"json": {"()": "m3saas.logging.JsonFormatter"}},
    "handlers": {"stdout": {"class": "logging.StreamHandler", "stream": "ext://sys.stdout", "formatter": "json"}},
    # Gunicorn merges this over its defaults: `root` must name a handler defined here.
    "root": {"level": "INFO", "handlers": ["stdout"]},
    "loggers": {
        "gunicorn.error": {"handlers": ["stdout"], "level": "INFO", "propagate": False},
        "gunicorn.access": {"handlers": ["stdout"], "level": "INFO", "propagate": False},
    },
}


def on_starting(server: Any) -> None:
    """Stop with the configuration error's one line before any worker forks.

    A worker that exits at boot is otherwise forked again and again, forever. Only the
    settings are loaded here (no app, no connection): workers still set Django up after the fork.
    """
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "m3saas.settings")
    try:
        settings.SECRET_KEY  # noqa: B018 (loads and validates the settings module)
    except ConfigError as exc:
        sys.stderr.write(f"M3SaaS cannot start: {exc}\n")
        raise SystemExit(2) from None
