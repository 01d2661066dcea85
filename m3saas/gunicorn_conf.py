"""Gunicorn's settings, read from the environment (`gunicorn --config python:m3saas.gunicorn_conf`).

The container and `make serve` run the same command (bin/docker-entrypoint.sh). Logs go to
stdout as JSON lines, like the application's.
"""

from __future__ import annotations

import os

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
