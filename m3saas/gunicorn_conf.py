"""Gunicorn's settings, read from the environment (`gunicorn --config python:m3saas.gunicorn_conf`).

The container and `make serve` run the same command (bin/docker-entrypoint.sh). Logs go to
stdout in the application's format (LOG_FORMAT).
"""

from __future__ import annotations

import os
import sys
from typing import Any

from django.conf import settings

from m3saas.conf import ConfigError
from m3saas.env import Env
from m3saas.logging import LOG_FORMATS, log_format_resolve
from m3saas.startup import EXIT_CONFIG, fail, master_database_check, one_line_errors

try:
    _env = Env()
    bind = [f"{_env.str('BIND_ADDRESS', default='0.0.0.0')}:{_env.int('PORT', default=80)}"]  # noqa: S104
    # Processes, each with a few threads: module views mostly wait on their database.
    workers = _env.int("WEB_CONCURRENCY", default=2)
    threads = _env.int("GUNICORN_THREADS", default=4)
    timeout = _env.int("GUNICORN_TIMEOUT", default=30)
    # The same format as the application's records (see LOGGING in m3saas/settings.py).
    _log_format = log_format_resolve(_env.choice("LOG_FORMAT", choices=LOG_FORMATS, default="auto"), sys.stdout)
except ConfigError as exc:
    # Gunicorn would print its own traceback for an exception raised while reading this file.
    fail(str(exc), EXIT_CONFIG)
worker_class = "gthread"
graceful_timeout = 30
# No preload: each worker sets Django up after the fork (database and MQTT connections are per process).
preload_app = False
# Gunicorn 25.1+ opens a control socket (`gunicornc`) under $XDG_RUNTIME_DIR or $HOME by default:
# the container's user has no writable home, and nothing here drives gunicorn that way.
control_socket_disable = True
accesslog = "-"
errorlog = "-"
access_log_format = '%(h)s "%(r)s" %(s)s %(b)s %(M)sms'

logconfig_dict = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "json": {"()": "m3saas.logging.JsonFormatter"},
        "text": {"()": "m3saas.logging.TextFormatter"},
    },
    "handlers": {"stdout": {"class": "logging.StreamHandler", "stream": "ext://sys.stdout", "formatter": _log_format}},
    # Gunicorn merges this over its defaults: `root` must name a handler defined here.
    "root": {"level": "INFO", "handlers": ["stdout"]},
    "loggers": {
        "gunicorn.error": {"handlers": ["stdout"], "level": "INFO", "propagate": False},
        "gunicorn.access": {"handlers": ["stdout"], "level": "INFO", "propagate": False},
    },
}


def on_starting(server: Any) -> None:
    """Stop with one line before any worker forks: a configuration error, or a master that does not answer.

    A worker that exits at boot is otherwise forked again and again, forever. Only the
    settings are loaded here and the one connection is closed again: workers set Django up
    (and connect) after the fork.
    """
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "m3saas.settings")
    with one_line_errors():
        settings.SECRET_KEY  # noqa: B018 (loads and validates the settings module)
        master_database_check()
