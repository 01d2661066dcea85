"""Scheduled jobs of the `test` module v1: notifications on the tenant's MQTT topic."""

from __future__ import annotations

import logging

from m3saas.cron import Job

logger = logging.getLogger(__name__)

NOTIFICATIONS = "notifications"


def _notify(message: str) -> None:
    # Imported when the job runs: the MQTT client is made lazily, never at import time.
    from m3saas.mqtt import mqtt_enabled, tenant_publish

    if not mqtt_enabled():
        logger.info("MQTT is not configured: notification not sent")
        return
    tenant_publish(NOTIFICATIONS, message)


def daily_notification() -> None:
    """Publish the tenant's daily notification to `<tenant name>/notifications`."""
    _notify("Here is your daily notification!")


def weekly_offer() -> None:
    _notify("Don't miss our offer!")


JOBS = [
    Job(name="test_daily_notification", func=daily_notification, repeat="day"),
    Job(name="test_weekly_offer", func=weekly_offer, repeat="week"),
]
