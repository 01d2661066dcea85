"""MQTT: one lazily connected paho-mqtt client per process, publish on commit.

Failure policy: publishing never raises for a broker that is down, slow or refusing the
credentials, and never does network I/O on the caller's thread (paho's network loop runs
in its own thread; the connection is made there). A connection failure is logged once,
with the broker's address, until the connection recovers. QoS 1 and 2 messages wait in a
bounded queue (`MQTT_MAX_QUEUED_MESSAGES`) and go out after reconnection; QoS 0 messages
published while the broker is known to be down, and anything beyond the queue's bound,
are dropped, counted and logged.
"""

from __future__ import annotations

import atexit
import collections
import enum
import json
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, ClassVar

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import DEFAULT_DB_ALIAS, connections, transaction

from m3saas.conf import MQTTConfig
from m3saas.exceptions import ApplicationError
from m3saas.tenancy.context import tenant_current, tenant_current_or_none
from m3saas.tenancy.info import TenantInfo

logger = logging.getLogger(__name__)

Payload = str | bytes | dict[str, Any] | list[Any]

DEFAULT_CLOSE_TIMEOUT = 2.0


class MQTTNotConfiguredError(ApplicationError):
    status_code = 503
    code = "mqtt_not_configured"
    default_message = "MQTT is not configured: add an 'mqtt' section (host, port) to the configuration file."


class _State(enum.Enum):
    NEW = "new"  # not started: nothing was published yet
    CONNECTING = "connecting"  # started, the first connection attempt has no answer yet
    CONNECTED = "connected"
    DOWN = "down"  # an attempt failed or the connection was lost; paho keeps retrying


@dataclass
class _Pending:
    topic: str
    payload: bytes
    retain: bool


@dataclass
class MQTTStats:
    """A snapshot of one client's counters."""

    connected: bool
    queued: int
    dropped: int
    sent: int
    failures: int  # failed connection attempts and lost connections


def mqtt_payload_encode(payload: Payload) -> bytes:
    """Bytes as they are, text as UTF-8, dicts and lists as compact JSON (dates, decimals, UUIDs too)."""
    if isinstance(payload, bytes):
        return payload
    if isinstance(payload, str):
        return payload.encode("utf-8")
    if isinstance(payload, dict | list):
        return json.dumps(payload, cls=DjangoJSONEncoder, separators=(",", ":")).encode("utf-8")
    raise TypeError(f"an MQTT payload is str, bytes, dict or list, not {type(payload).__name__}")


def _check_topic(topic: str) -> None:
    if not isinstance(topic, str) or not topic:
        raise ValueError("an MQTT topic is a non-empty string")
    if "#" in topic or "+" in topic or "\0" in topic:
        raise ValueError(f"an MQTT topic to publish to cannot hold '#', '+' or NUL: {topic!r}")
    if len(topic.encode("utf-8")) > 65535:
        raise ValueError("an MQTT topic is at most 65535 bytes")


def _check_qos(qos: int) -> None:
    if qos not in (0, 1, 2):
        raise ValueError(f"MQTT QoS is 0, 1 or 2, not {qos!r}")


class MQTTClient:
    """A paho-mqtt client whose publishes never fail or stall the caller on the network.

    Made from an explicit `MQTTConfig`; `instance()` gives the process's client, made from
    the configuration file on first use (and again after a fork).
    """

    _instance: ClassVar[MQTTClient | None] = None
    _instance_pid: ClassVar[int | None] = None
    _instance_lock: ClassVar[threading.Lock] = threading.Lock()
    # Set by `override()`: (config, options) used by `instance()` instead of the file's.
    _override: ClassVar[tuple[MQTTConfig | None, dict[str, Any]] | None] = None

    def __init__(
        self,
        config: MQTTConfig,
        *,
        max_queued_messages: int | None = None,
        client_id: str | None = None,
        keepalive: int = 30,
        connect_timeout: float = 5.0,
        reconnect_delay: tuple[int, int] = (1, 30),
    ) -> None:
        import paho.mqtt.client as paho

        if max_queued_messages is None:
            max_queued_messages = int(settings.MQTT_MAX_QUEUED_MESSAGES)
        if max_queued_messages < 1:
            raise ValueError("max_queued_messages must be at least 1")
        self.config = config
        self.address = f"{config.host}:{config.port}"
        self.max_queued_messages = max_queued_messages
        self.keepalive = keepalive
        self._lock = threading.Lock()
        self._state = _State.NEW
        self._pid = os.getpid()
        # QoS 0 messages published before the first connection answered; bounded like the queue.
        self._pending: collections.deque[_Pending] = collections.deque()
        self._dropped = 0
        self._dropped_in_outage = 0
        self._sent = 0
        self._failures = 0
        self._failure_logged = False
        self._closed = False
        self._client_id = client_id or f"m3saas-{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self._paho = paho.Client(
            callback_api_version=paho.CallbackAPIVersion.VERSION2,
            client_id=self._client_id,
            protocol=paho.MQTTv311,
            clean_session=True,
        )
        if config.username:
            self._paho.username_pw_set(config.username, config.password)
        self._paho.max_queued_messages_set(max_queued_messages)
        self._paho.reconnect_delay_set(*reconnect_delay)
        self._paho.connect_timeout = connect_timeout
        self._paho.on_connect = self._on_connect
        self._paho.on_connect_fail = self._on_connect_fail
        self._paho.on_disconnect = self._on_disconnect
        self._paho.on_publish = self._on_publish

    # -- the process's client -------------------------------------------------------------

    @classmethod
    def instance(cls) -> MQTTClient:
        """The process's client, made on first use; a forked child gets its own.

        Raises `MQTTNotConfiguredError` when the configuration has no `mqtt` section.
        """
        pid = os.getpid()
        current = cls._instance
        if current is not None and cls._instance_pid == pid:
            return current
        with cls._instance_lock:
            if cls._instance is None or cls._instance_pid != pid:
                # After a fork the parent's client (its socket, its thread) is not ours: never
                # close or disconnect it here, that would cut the parent's connection.
                config, options = cls._override if cls._override is not None else (settings.M3SAAS_CONFIG.mqtt, {})
                if config is None:
                    raise MQTTNotConfiguredError()
                cls._instance = cls(config, **options)
                cls._instance_pid = pid
            return cls._instance

    @classmethod
    def reset_instance(cls) -> None:
        """Close and forget the process's client; the next `instance()` makes a new one."""
        with cls._instance_lock:
            current, cls._instance, cls._instance_pid = cls._instance, None, None
        if current is not None and current._pid == os.getpid():
            current.close(timeout=0)

    @classmethod
    @contextmanager
    def override(cls, config: MQTTConfig | None, **options: Any) -> Iterator[None]:
        """Point `instance()` and `mqtt_enabled()` at `config` for the block (tests; `None`: MQTT off)."""
        previous = cls._override
        cls.reset_instance()
        cls._override = (config, options)
        try:
            yield
        finally:
            cls.reset_instance()
            cls._override = previous

    @classmethod
    def configured(cls) -> MQTTConfig | None:
        """The broker `instance()` would use, or None when MQTT is off."""
        if cls._override is not None:
            return cls._override[0]
        return settings.M3SAAS_CONFIG.mqtt

    # -- publishing -----------------------------------------------------------------------

    def publish(self, topic: str, payload: Payload, qos: int = 0, retain: bool = False) -> None:
        """Hand a message to the network thread; returns at once, whatever the broker's state.

        Invalid arguments raise `ValueError`/`TypeError`; broker trouble never raises.
        """
        _check_topic(topic)
        _check_qos(qos)
        data = mqtt_payload_encode(payload)
        if os.getpid() != self._pid:
            raise RuntimeError("this MQTT client belongs to another process; use MQTTClient.instance()")
        self._start()
        if qos == 0:
            self._publish_qos0(topic, data, retain)
        else:
            self._publish_queued(topic, data, qos, retain)

    def _start(self) -> None:
        if self._state is not _State.NEW:
            return
        with self._lock:
            if self._state is not _State.NEW or self._closed:
                return
            self._state = _State.CONNECTING
        # Only records the address: the DNS look-up and the TCP connect happen in paho's thread.
        self._paho.connect_async(self.config.host, self.config.port, keepalive=self.keepalive)
        self._paho.loop_start()
        atexit.register(self._close_at_exit)

    def _publish_qos0(self, topic: str, data: bytes, retain: bool) -> None:
        import paho.mqtt.client as paho

        with self._lock:
            if self._state is _State.CONNECTING:
                if len(self._pending) < self.max_queued_messages:
                    self._pending.append(_Pending(topic, data, retain))
                    return
                self._drop_locked(1, "the queue is full")
                return
            if self._state is not _State.CONNECTED:
                self._drop_locked(1, "QoS 0 while disconnected")
                return
        info = self._paho.publish(topic, data, qos=0, retain=retain)
        if info.rc != paho.MQTT_ERR_SUCCESS:
            with self._lock:
                self._drop_locked(1, "QoS 0 while disconnected")

    def _publish_queued(self, topic: str, data: bytes, qos: int, retain: bool) -> None:
        import paho.mqtt.client as paho

        # paho keeps QoS 1/2 messages (at most max_queued_messages) until acknowledged and
        # sends them again after a reconnection; while disconnected it answers NO_CONN.
        info = self._paho.publish(topic, data, qos=qos, retain=retain)
        with self._lock:
            if info.rc not in (paho.MQTT_ERR_SUCCESS, paho.MQTT_ERR_NO_CONN):
                self._drop_locked(1, f"the queue of {self.max_queued_messages} messages is full")

    def _drop_locked(self, count: int, reason: str) -> None:
        if count <= 0:
            return
        self._dropped += count
        if self._dropped_in_outage == 0:
            logger.warning(
                "MQTT broker %s: dropping messages (%s); dropped messages are counted until it recovers",
                self.address,
                reason,
            )
        self._dropped_in_outage += count

    def _paho_queued(self) -> int:
        """QoS 1/2 messages paho holds until acknowledged (pinned paho-mqtt 2.1: `_out_messages`)."""
        return len(self._paho._out_messages)

    # -- paho callbacks (network thread) --------------------------------------------------

    def _on_connect(self, client: Any, userdata: Any, flags: Any, reason_code: Any, properties: Any) -> None:
        if reason_code.is_failure:
            self._mark_down(f"connection refused: {reason_code}")
            return
        with self._lock:
            recovered = self._state is _State.DOWN
            self._state = _State.CONNECTED
            self._failure_logged = False
            dropped, self._dropped_in_outage = self._dropped_in_outage, 0
            pending = list(self._pending)
            self._pending.clear()
        if recovered:
            logger.info("MQTT broker %s: connected again", self.address)
        if dropped:
            logger.warning("MQTT broker %s: %d message(s) were dropped while it was unavailable", self.address, dropped)
        for message in pending:
            info = client.publish(message.topic, message.payload, qos=0, retain=message.retain)
            if info.rc != 0:
                with self._lock:
                    self._drop_locked(1, "QoS 0 while disconnected")

    def _on_connect_fail(self, client: Any, userdata: Any) -> None:
        self._mark_down("cannot connect")

    def _on_disconnect(self, client: Any, userdata: Any, flags: Any, reason_code: Any, properties: Any) -> None:
        if self._closed:
            return
        self._mark_down(f"connection lost: {reason_code}")

    def _on_publish(self, client: Any, userdata: Any, mid: int, reason_code: Any, properties: Any) -> None:
        # QoS 0: written to the socket; QoS 1 and 2: acknowledged by the broker.
        with self._lock:
            self._sent += 1

    def _mark_down(self, reason: str) -> None:
        with self._lock:
            self._state = _State.DOWN
            self._failures += 1
            pending = len(self._pending)
            self._pending.clear()
            log = not self._failure_logged and not self._closed
            self._failure_logged = True
            if pending:
                self._drop_locked(pending, "QoS 0 while disconnected")
        if log:
            # Address only: the credentials never reach the log.
            logger.warning("MQTT broker %s unavailable (%s); retrying in the background", self.address, reason)

    # -- state and shutdown ---------------------------------------------------------------

    @property
    def connected(self) -> bool:
        return self._state is _State.CONNECTED

    @property
    def stats(self) -> MQTTStats:
        with self._lock:
            return MQTTStats(
                connected=self._state is _State.CONNECTED,
                queued=self._paho_queued() + len(self._pending),
                dropped=self._dropped,
                sent=self._sent,
                failures=self._failures,
            )

    def wait_connected(self, timeout: float) -> bool:
        """Wait up to `timeout` seconds for a connection (commands and tests; never in a request)."""
        return self._wait(lambda: self._state is _State.CONNECTED, timeout)

    def flush(self, timeout: float) -> bool:
        """Wait up to `timeout` seconds until nothing is queued; True when nothing is."""
        return self._wait(lambda: self.stats.queued == 0, timeout)

    def _wait(self, condition: Callable[[], bool], timeout: float) -> bool:
        deadline = time.monotonic() + max(timeout, 0.0)
        while not condition():
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.02)
        return True

    def close(self, timeout: float = DEFAULT_CLOSE_TIMEOUT) -> None:
        """Send what is queued (waiting at most `timeout` seconds), then disconnect."""
        with self._lock:
            if self._closed:
                return
            started = self._state is not _State.NEW
        if started and timeout > 0 and self.connected:
            self.flush(timeout)
        with self._lock:
            self._closed = True
        if not started:
            return
        self._paho.disconnect()
        stopper = threading.Thread(target=self._paho.loop_stop, name="mqtt-close", daemon=True)
        stopper.start()
        stopper.join(timeout=max(timeout, 1.0))

    def _close_at_exit(self) -> None:
        if os.getpid() == self._pid:
            self.close(timeout=float(settings.MQTT_CLOSE_TIMEOUT))


def mqtt_enabled() -> bool:
    """Whether the configuration names a broker (no `mqtt` section: MQTT is off)."""
    return MQTTClient.configured() is not None


def _send(topic: str, data: bytes, qos: int, retain: bool) -> None:
    try:
        MQTTClient.instance().publish(topic, data, qos=qos, retain=retain)
    except Exception:
        # Runs after the commit: the data is saved, so a publishing bug must not turn into a 500.
        logger.exception("MQTT publish to %s failed after commit", topic)


def mqtt_publish(
    topic: str,
    payload: Payload,
    *,
    qos: int = 0,
    retain: bool = False,
    using: str | None = None,
) -> None:
    """Publish when the transaction of `using` commits; at once outside a transaction.

    `using` defaults to the current tenant's alias, else `default`. A rolled-back
    transaction publishes nothing. Raises `MQTTNotConfiguredError` when MQTT is off.
    """
    if not mqtt_enabled():
        raise MQTTNotConfiguredError()
    _check_topic(topic)
    _check_qos(qos)
    data = mqtt_payload_encode(payload)
    if using is None:
        tenant = tenant_current_or_none()
        using = tenant.alias if tenant is not None else DEFAULT_DB_ALIAS
    # `in_atomic_block` needs no database connection (on_commit outside one would open one).
    if connections[using].in_atomic_block:
        transaction.on_commit(lambda: _send(topic, data, qos, retain), using=using)
    else:
        MQTTClient.instance().publish(topic, data, qos=qos, retain=retain)


def tenant_topic(subtopic: str, *, tenant: TenantInfo | None = None) -> str:
    """`<tenant name>/<subtopic>`: the prefix the broker's scoped role gives the tenant's user."""
    tenant = tenant if tenant is not None else tenant_current()
    subtopic = subtopic.strip("/")
    if not subtopic:
        raise ValueError("a tenant subtopic is a non-empty string")
    return f"{tenant.name}/{subtopic}"


def tenant_publish(subtopic: str, payload: Payload, *, qos: int = 0, retain: bool = False) -> None:
    """Publish to `<current tenant name>/<subtopic>` when the tenant database's transaction commits."""
    tenant = tenant_current()
    mqtt_publish(tenant_topic(subtopic, tenant=tenant), payload, qos=qos, retain=retain, using=tenant.alias)
