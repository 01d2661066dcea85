"""MQTT for module authors: `from m3saas.mqtt import mqtt_publish, tenant_publish, MQTTClient`.

`client.py` holds the lazy client and publish-on-commit; `credentials.py` the broker's
file-RBAC credentials (not re-exported here).
"""

from __future__ import annotations

from m3saas.mqtt.client import (
    MQTTClient,
    MQTTNotConfiguredError,
    mqtt_enabled,
    mqtt_publish,
    tenant_publish,
    tenant_topic,
)

__all__ = [
    "MQTTClient",
    "MQTTNotConfiguredError",
    "mqtt_enabled",
    "mqtt_publish",
    "tenant_publish",
    "tenant_topic",
]
