"""MQTT publishing rules with a fake client (no broker); test_mqtt_broker.py shows them on a real one."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from django.db import transaction

from m3saas.conf import MQTTConfig
from m3saas.exceptions import TenantNotSetError
from m3saas.mqtt.client import MQTTClient, mqtt_payload_encode, mqtt_publish, tenant_publish, tenant_topic
from m3saas.tenancy.context import use_tenant
from m3saas.tenancy.info import TenantInfo


@dataclass
class FakeClient:
    sent: list[tuple[str, bytes, int, bool]] = field(default_factory=list)

    def publish(self, topic: str, payload: bytes, qos: int = 0, retain: bool = False) -> None:
        self.sent.append((topic, payload, qos, retain))


@pytest.fixture
def fake(monkeypatch) -> Iterator[FakeClient]:
    client = FakeClient()
    config = MQTTConfig(host="broker.invalid", port=1883, username=None, password=None)
    with MQTTClient.override(config):
        monkeypatch.setattr(MQTTClient, "instance", classmethod(lambda cls: client))
        yield client


@pytest.fixture
def tenant(make_tenant) -> TenantInfo:
    return make_tenant()


def test_payload_encoding():
    assert mqtt_payload_encode(b"\x00raw") == b"\x00raw"
    assert mqtt_payload_encode("héllo") == "héllo".encode()
    when = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert json.loads(mqtt_payload_encode({"at": when, "n": Decimal("1.5")})) == {
        "at": "2025-01-02T03:04:05Z",
        "n": "1.5",
    }
    with pytest.raises(TypeError):
        mqtt_payload_encode(42)  # type: ignore[arg-type]


@pytest.mark.parametrize("topic", ["", "a/#", "a/+/b", "a\0b"])
def test_publishing_to_an_invalid_topic_is_refused(fake, topic):
    with pytest.raises(ValueError):
        mqtt_publish(topic, "x")
    assert fake.sent == []


def test_invalid_qos_is_refused(fake):
    with pytest.raises(ValueError):
        mqtt_publish("a/b", "x", qos=3)


@pytest.mark.django_db
def test_tenant_publish_waits_for_the_tenant_commit(fake, tenant):
    with use_tenant(tenant), transaction.atomic(using=tenant.alias):
        tenant_publish("animals/created", {"id": 1}, qos=1, retain=True)
        assert fake.sent == []
    assert fake.sent == [(f"{tenant.name}/animals/created", b'{"id":1}', 1, True)]


@pytest.mark.django_db
def test_tenant_publish_in_a_rolled_back_transaction_sends_nothing(fake, tenant):
    with use_tenant(tenant), pytest.raises(RuntimeError), transaction.atomic(using=tenant.alias):
        tenant_publish("animals/created", "x")
        raise RuntimeError
    assert fake.sent == []


@pytest.mark.django_db
def test_publish_in_a_tenant_block_follows_the_tenant_transaction_not_default(fake, tenant):
    """Inside a tenant block the default `using` is the tenant; an open `default` transaction does not hold it."""
    with use_tenant(tenant), transaction.atomic(using="default"):
        mqtt_publish("plain/topic", "x")
        assert fake.sent == [("plain/topic", b"x", 0, False)]


def test_tenant_publish_outside_a_tenant_raises(fake):
    with pytest.raises(TenantNotSetError):
        tenant_publish("animals/created", "x")


def test_tenant_topic_is_prefixed_with_the_tenant_name():
    info = TenantInfo(id=3, name="acme", user="acme", password="p")
    assert tenant_topic("/animals/created/", tenant=info) == "acme/animals/created"
    with pytest.raises(ValueError):
        tenant_topic("/", tenant=info)


def test_client_made_from_an_explicit_config_does_not_connect_until_it_publishes():
    client = MQTTClient(MQTTConfig(host="broker.invalid", port=1883, username="u", password="p"))
    try:
        assert client.address == "broker.invalid:1883"
        assert not client.connected
        assert client.stats.queued == 0
    finally:
        client.close(timeout=0)
