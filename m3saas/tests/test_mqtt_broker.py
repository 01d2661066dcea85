"""MQTT against real brokers: the shared Mosquitto on 127.0.0.1:1883, and throw-away ones.

Outages are staged on a Mosquitto started here on a free port, never on the shared one.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import shutil
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import pytest
from django.db import transaction
from rest_framework.test import APIClient

from m3saas.conf import MQTTConfig
from m3saas.mqtt.client import (
    MQTTClient,
    MQTTNotConfiguredError,
    mqtt_enabled,
    mqtt_publish,
    tenant_publish,
)
from m3saas.tenancy.context import use_tenant

pytestmark = [pytest.mark.mqtt, pytest.mark.module_apis_public]

WAIT = 20.0  # seconds any wait below may take at most before the test fails
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def wait_until(condition: Callable[[], bool], timeout: float = WAIT) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Subscriber:
    """A paho subscriber collecting what arrives on `topic` (QoS 2 subscription)."""

    def __init__(self, host: str, port: int, topic: str, *, client_id: str = "", clean_session: bool = True) -> None:
        self.messages: queue.Queue[paho.MQTTMessage] = queue.Queue()
        self.subscribed = threading.Event()
        self.client = paho.Client(
            callback_api_version=paho.CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=clean_session
        )
        self.client.on_connect = lambda c, u, f, rc, p: c.subscribe(topic, qos=2)
        self.client.on_subscribe = lambda c, u, mid, rcs, p: self.subscribed.set()
        self.client.on_message = lambda c, u, message: self.messages.put(message)
        self.client.connect(host, port)
        self.client.loop_start()
        assert self.subscribed.wait(WAIT), f"no subscription to {topic} on {host}:{port}"

    def get(self, timeout: float = WAIT) -> paho.MQTTMessage:
        try:
            return self.messages.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError("no message arrived") from None

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def subscribe(mqtt_broker: tuple[str, int]) -> Iterator[Callable[..., Subscriber]]:
    made: list[Subscriber] = []

    def make(topic: str, *, broker: tuple[str, int] | None = None, **options: Any) -> Subscriber:
        host, port = broker or mqtt_broker
        subscriber = Subscriber(host, port, topic, **options)
        made.append(subscriber)
        return subscriber

    yield make
    for subscriber in made:
        subscriber.close()


@pytest.fixture
def prefix() -> str:
    """A topic prefix no other test uses."""
    return f"m3saas-test/{uuid.uuid4().hex}"


@pytest.fixture
def shared_broker(mqtt_broker: tuple[str, int]) -> Iterator[MQTTClient]:
    """`MQTTClient.instance()` pointed at the shared broker for the test."""
    host, port = mqtt_broker
    with MQTTClient.override(MQTTConfig(host=host, port=port, username=None, password=None)):
        yield MQTTClient.instance()


class OwnBroker:
    """A Mosquitto of this test alone, on a free port, that the test may stop and start."""

    def __init__(self, directory: Path, *, extra: str = "") -> None:
        self.port = free_port()
        self.directory = directory
        self.conf = directory / "mosquitto.conf"
        lines = [
            f"listener {self.port} 127.0.0.1",
            "persistence true",
            f"persistence_location {directory}/",
            "log_dest none",
        ]
        if os.geteuid() == 0:
            lines.append("user root")  # else Mosquitto drops to a user that cannot write here
        self.conf.write_text("\n".join([*lines, extra or "allow_anonymous true"]) + "\n")
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> tuple[str, int]:
        return "127.0.0.1", self.port

    def start(self) -> None:
        binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        self.process = subprocess.Popen([binary, "-c", str(self.conf)])
        assert wait_until(self._answers), f"mosquitto did not start on port {self.port}"

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=WAIT)
            self.process = None

    def _answers(self) -> bool:
        try:
            with socket.create_connection(self.address, timeout=1):
                return True
        except OSError:
            return False


@pytest.fixture
def own_broker(tmp_path: Path) -> Iterator[Callable[..., OwnBroker]]:
    if not (shutil.which("mosquitto") or Path("/usr/sbin/mosquitto").exists()):
        message = "mosquitto is not installed: the outage tests start their own broker"
        if IN_CI:
            pytest.fail(message + " (CI=true: not skipped)")
        pytest.skip(message)
    made: list[OwnBroker] = []

    def make(*, extra: str = "") -> OwnBroker:
        directory = tmp_path / f"broker{len(made)}"
        directory.mkdir()
        broker = OwnBroker(directory, extra=extra)
        broker.start()
        made.append(broker)
        return broker

    yield make
    for broker in made:
        broker.stop()


def config_for(address: tuple[str, int], **credentials: str) -> MQTTConfig:
    return MQTTConfig(
        host=address[0], port=address[1], username=credentials.get("username"), password=credentials.get("password")
    )


# -- what a subscriber receives -----------------------------------------------------------------


def test_subscriber_receives_topic_payload_and_qos(shared_broker, subscribe, prefix):
    subscriber = subscribe(f"{prefix}/#")
    shared_broker.publish(f"{prefix}/news", {"animal": "owl", "legs": 2}, qos=1)
    message = subscriber.get()
    assert message.topic == f"{prefix}/news"
    assert json.loads(message.payload) == {"animal": "owl", "legs": 2}
    assert message.qos == 1
    assert message.retain is False


def test_first_qos0_message_of_a_new_client_is_not_lost(shared_broker, subscribe, prefix):
    """The client connects on its first publish; a QoS 0 message waits for that connection."""
    subscriber = subscribe(f"{prefix}/#")
    assert not shared_broker.connected
    shared_broker.publish(f"{prefix}/hello", "first", qos=0)
    message = subscriber.get()
    assert (message.topic, message.payload, message.qos) == (f"{prefix}/hello", b"first", 0)


def test_qos2_message_arrives_with_qos2(shared_broker, subscribe, prefix):
    subscriber = subscribe(f"{prefix}/#")
    shared_broker.publish(f"{prefix}/exact", b"\x00\x01raw", qos=2)
    message = subscriber.get()
    assert (message.payload, message.qos) == (b"\x00\x01raw", 2)


def test_retained_message_reaches_a_later_subscriber(shared_broker, subscribe, prefix):
    topic = f"{prefix}/state"
    shared_broker.publish(topic, "on", qos=1, retain=True)
    assert shared_broker.flush(WAIT)
    try:
        message = subscribe(topic).get()
        assert (message.payload, message.retain) == (b"on", True)
    finally:
        shared_broker.publish(topic, b"", qos=1, retain=True)  # clears the retained message
        shared_broker.flush(WAIT)


# -- transactions -------------------------------------------------------------------------------


@pytest.mark.django_db
def test_publish_in_a_committed_tenant_transaction_arrives(shared_broker, subscribe, make_tenant):
    tenant = make_tenant()
    subscriber = subscribe(f"{tenant.name}/#")
    with use_tenant(tenant), transaction.atomic(using=tenant.alias):
        tenant_publish("orders/created", {"id": 7}, qos=1)
        assert subscriber.messages.empty()
    message = subscriber.get()
    assert (message.topic, json.loads(message.payload)) == (f"{tenant.name}/orders/created", {"id": 7})


@pytest.mark.django_db
def test_rolled_back_transaction_publishes_nothing(shared_broker, subscribe, make_tenant):
    tenant = make_tenant()
    subscriber = subscribe(f"{tenant.name}/#")
    with use_tenant(tenant):
        with pytest.raises(RuntimeError), transaction.atomic(using=tenant.alias):
            tenant_publish("orders/created", "rolled back", qos=1)
            raise RuntimeError("roll back")
        # A later message on the same topic and QoS arrives after anything sent before it.
        tenant_publish("orders/created", "marker", qos=1)
    assert subscriber.get().payload == b"marker"
    assert subscriber.messages.empty()


def test_publish_outside_a_transaction_goes_out_at_once(shared_broker, subscribe, prefix):
    subscriber = subscribe(f"{prefix}/#")
    mqtt_publish(f"{prefix}/now", [1, 2, 3], qos=1)
    assert json.loads(subscriber.get().payload) == [1, 2, 3]


# -- the example module -------------------------------------------------------------------------


@pytest.mark.django_db
def test_creating_an_animal_publishes_it_to_the_tenant_topic(shared_broker, subscribe, make_tenant):
    tenant = make_tenant(modules=[("test", 1)])
    subscriber = subscribe(f"{tenant.name}/#")
    response = APIClient().post(f"/{tenant.id}/test/v1/animals", {"name": "owl"}, format="json")
    assert response.status_code == 201
    message = subscriber.get()
    assert message.topic == f"{tenant.name}/animals/created"
    assert json.loads(message.payload) == response.json()
    assert message.qos == 1


@pytest.mark.django_db
def test_creating_a_v2_animal_publishes_it_to_the_tenant_topic(shared_broker, subscribe, make_tenant):
    tenant = make_tenant(modules=[("test", 2)])
    subscriber = subscribe(f"{tenant.name}/animals/created")
    response = APIClient().post(f"/{tenant.id}/test/v2/animals", {"name": "owl", "species": "bird"}, format="json")
    assert response.status_code == 201
    assert json.loads(subscriber.get().payload) == response.json()


@pytest.mark.django_db
def test_animal_of_one_tenant_is_not_published_under_another(shared_broker, subscribe, make_tenant):
    tenant, other = make_tenant(), make_tenant()
    other_subscriber = subscribe(f"{other.name}/#")
    own_subscriber = subscribe(f"{tenant.name}/#")
    assert APIClient().post(f"/{tenant.id}/test/v1/animals", {"name": "owl"}, format="json").status_code == 201
    own_subscriber.get()
    assert shared_broker.flush(WAIT)
    with use_tenant(other):
        tenant_publish("animals/created", "marker", qos=1)
    assert other_subscriber.get().payload == b"marker"
    assert other_subscriber.messages.empty()


# -- outages ------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_broker_down_api_answers_201_and_queued_qos1_message_arrives_after_restart(own_broker, subscribe, make_tenant):
    broker = own_broker()
    tenant = make_tenant(modules=[("test", 1)])
    topic = f"{tenant.name}/animals/created"
    # A persistent session: the broker keeps the subscription and queues for it across its restart.
    subscriber_id = f"sub-{uuid.uuid4().hex[:12]}"
    subscribe(topic, broker=broker.address, client_id=subscriber_id, clean_session=False).close()
    with MQTTClient.override(config_for(broker.address), reconnect_delay=(1, 1)):
        client = MQTTClient.instance()
        client.publish(f"{tenant.name}/warm-up", "x", qos=1)
        assert client.wait_connected(WAIT)
        assert client.flush(WAIT)
        broker.stop()
        assert wait_until(lambda: not client.connected)

        response = APIClient().post(f"/{tenant.id}/test/v1/animals", {"name": "owl"}, format="json")

        assert response.status_code == 201
        assert client.stats.queued == 1
        broker.start()
        subscriber = subscribe(topic, broker=broker.address, client_id=subscriber_id, clean_session=False)
        message = subscriber.get()
        assert json.loads(message.payload) == response.json()
        assert client.stats.dropped == 0


@pytest.mark.django_db
def test_silent_broker_does_not_stall_the_api(make_tenant):
    """A broker that accepts TCP connections and never answers: the request is served anyway."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    tenant = make_tenant(modules=[("test", 1)])
    try:
        with MQTTClient.override(config_for(listener.getsockname())):
            response = APIClient().post(f"/{tenant.id}/test/v1/animals", {"name": "owl"}, format="json")
            assert response.status_code == 201
            assert MQTTClient.instance().stats.queued == 1
    finally:
        listener.close()


def test_refused_credentials_are_logged_once_with_the_address_and_without_the_password(own_broker, tmp_path, caplog):
    passwords = tmp_path / "passwords"
    subprocess.run(
        [shutil.which("mosquitto_passwd") or "/usr/bin/mosquitto_passwd", "-b", "-c", str(passwords), "app", "right"],
        check=True,
    )
    broker = own_broker(extra=f"allow_anonymous false\npassword_file {passwords}")
    secret = f"wrong-{uuid.uuid4().hex}"
    caplog.set_level(logging.INFO, logger="m3saas.mqtt.client")
    with MQTTClient.override(config_for(broker.address, username="app", password=secret), reconnect_delay=(1, 1)):
        client = MQTTClient.instance()
        for _ in range(3):
            client.publish("app/refused", "x", qos=1)
        assert wait_until(lambda: client.stats.failures >= 3)
        client.publish("app/refused", "dropped", qos=0)
        stats = client.stats
    failures = [r for r in caplog.records if "unavailable" in r.getMessage()]
    assert len(failures) == 1
    assert f"127.0.0.1:{broker.port}" in failures[0].getMessage()
    assert all(secret not in r.getMessage() for r in caplog.records)
    assert (stats.queued, stats.dropped) == (3, 1)


def test_qos0_while_the_broker_is_down_is_dropped_and_counted(caplog):
    caplog.set_level(logging.WARNING, logger="m3saas.mqtt.client")
    with MQTTClient.override(config_for(("127.0.0.1", free_port())), reconnect_delay=(1, 1)):
        client = MQTTClient.instance()
        client.publish("down/first", "waits for the first attempt", qos=0)
        assert wait_until(lambda: client.stats.failures >= 1)
        client.publish("down/second", "dropped", qos=0)
        client.publish("down/third", "dropped", qos=0)
        stats = client.stats
    assert (stats.queued, stats.dropped, stats.sent) == (0, 3, 0)
    assert len([r for r in caplog.records if "dropping messages" in r.getMessage()]) == 1


def test_qos1_beyond_the_queue_bound_is_dropped_and_counted():
    with MQTTClient.override(config_for(("127.0.0.1", free_port())), max_queued_messages=2):
        client = MQTTClient.instance()
        for n in range(3):
            client.publish("down/queued", str(n), qos=1)
        stats = client.stats
    assert (stats.queued, stats.dropped) == (2, 1)


def test_messages_queued_while_down_go_out_in_order_after_reconnection(own_broker, subscribe, prefix):
    broker = own_broker()
    subscriber_id = f"sub-{uuid.uuid4().hex[:12]}"
    subscribe(f"{prefix}/#", broker=broker.address, client_id=subscriber_id, clean_session=False).close()
    with MQTTClient.override(config_for(broker.address), reconnect_delay=(1, 1)):
        client = MQTTClient.instance()
        client.publish(f"m3saas-test/warm-up/{uuid.uuid4().hex}", "x", qos=1)
        assert client.wait_connected(WAIT)
        assert client.flush(WAIT)
        broker.stop()
        assert wait_until(lambda: not client.connected)
        for n in range(5):
            client.publish(f"{prefix}/queued", str(n), qos=1)
        broker.start()
        subscriber = subscribe(f"{prefix}/#", broker=broker.address, client_id=subscriber_id, clean_session=False)
        received = [subscriber.get().payload for _ in range(5)]
        assert wait_until(lambda: client.stats.queued == 0)
    assert received == [b"0", b"1", b"2", b"3", b"4"]


# -- configuration and processes ----------------------------------------------------------------


@pytest.mark.django_db
def test_without_mqtt_config_publishing_says_so_and_the_api_still_works(make_tenant):
    tenant = make_tenant(modules=[("test", 1)])
    with MQTTClient.override(None):
        assert not mqtt_enabled()
        with pytest.raises(MQTTNotConfiguredError, match="MQTT is not configured"):
            MQTTClient.instance()
        with pytest.raises(MQTTNotConfiguredError):
            mqtt_publish("any/topic", "x")
        response = APIClient().post(f"/{tenant.id}/test/v1/animals", {"name": "owl"}, format="json")
    assert response.status_code == 201


def test_instance_is_one_per_process_and_a_forked_child_gets_its_own():
    with MQTTClient.override(config_for(("127.0.0.1", free_port()))):
        parent = MQTTClient.instance()
        assert MQTTClient.instance() is parent
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: report, never return into pytest
            try:
                child = MQTTClient.instance()
                os.write(write, b"ok" if child is not parent and child._pid == os.getpid() else b"same")
            finally:
                os._exit(0)
        os.close(write)
        os.waitpid(pid, 0)
        answer = os.read(read, 16)
        os.close(read)
        assert answer == b"ok"
        assert MQTTClient.instance() is parent


def test_instance_is_made_lazily_and_connects_on_first_publish(mqtt_broker):
    with MQTTClient.override(config_for(mqtt_broker)):
        client = MQTTClient.instance()
        network_threads = [t for t in threading.enumerate() if t.name.endswith(client._client_id)]
        assert network_threads == []
        assert not client.connected
        client.publish("m3saas-test/lazy", "x")
        assert client.wait_connected(WAIT)
