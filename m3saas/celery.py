"""The Celery app: workers run per-tenant work (`tenants.tasks`) when CELERY_BROKER_URL is set.

`celery -A m3saas.celery worker` runs a worker, `celery -A m3saas.celery beat` the schedule that
replaces bin/cron-loop.sh (the daily scheduled jobs at CRON_TIME; which job is due stays each
module's `cron.py` rule). Settings are the `CELERY_*` names of the Django settings. Like the
rest of the wiring, this file names apps only as strings.
"""

from __future__ import annotations

import os
from typing import Any

from celery import Celery
from celery.schedules import crontab

from m3saas.identifiers import is_digits

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "m3saas.settings")

app = Celery("m3saas")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks(["tenants"])

CRONS_DISPATCH = "tenants.crons_dispatch"


def cron_time_parse(value: str) -> tuple[int, int]:
    """`HH:MM` → (hour, minute); a one-line error otherwise (as bin/cron-loop.sh refuses it)."""
    hour, sep, minute = value.strip().partition(":")
    if not (sep and is_digits(hour) and is_digits(minute) and int(hour) < 24 and int(minute) < 60):
        raise ValueError(f"CRON_TIME must be HH:MM, not {value!r}")
    return int(hour), int(minute)


@app.on_after_configure.connect
def _beat_schedule(sender: Celery, **kwargs: Any) -> None:
    from django.conf import settings

    hour, minute = cron_time_parse(settings.CRON_TIME)
    sender.conf.beat_schedule = {
        "daily-scheduled-jobs": {"task": CRONS_DISPATCH, "schedule": crontab(hour=hour, minute=minute)},
    }
