"""Every private attribute of Django, pytest-django and paho-mqtt that the code relies on.

A dependency upgrade that removes or changes one of them fails here, in one named place,
instead of somewhere deep in a request. Each test names the code that relies on it.
"""

from __future__ import annotations

import inspect
import threading

import django
import paho.mqtt.client as paho
import pytest
from asgiref.local import Local
from django.conf import settings
from django.core.management.commands.migrate import Command as MigrateCommand
from django.db import connections
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.migrations.executor import MigrationExecutor
from django.db.utils import ConnectionHandler
from django.http import HttpResponse
from django.utils.log import log_response

from m3saas.tenancy.connections import TenantConnectionHandler


def test_django_is_the_version_these_checks_were_written_for():
    """Re-read every test below (and m3saas/tenancy/connections.py) when this changes."""
    assert django.VERSION[:2] == (5, 2)


def test_connection_handler_is_swapped_in_by_the_platform_app():
    """m3saas/apps.py installs it in ready(); every module holds `django.db.connections` by reference."""
    assert isinstance(connections, TenantConnectionHandler)
    assert isinstance(connections._made, threading.local)


def test_connection_handler_keeps_its_wrappers_in_a_thread_local_store():
    """TenantConnectionHandler reads and writes `_connections` (one attribute per alias)."""
    assert isinstance(connections._connections, Local)  # type: ignore[attr-defined]
    source = inspect.getsource(ConnectionHandler.__getitem__)
    assert "self._connections" in source


def test_connections_settings_is_a_cached_property_over_settings():
    """TenantConnectionHandler.settings_update replaces `connections.settings` (the instance's value
    of a cached property) and `_settings`, which the property is computed from again if dropped."""
    from django.utils.connection import BaseConnectionHandler
    from django.utils.functional import cached_property

    assert isinstance(BaseConnectionHandler.__dict__["settings"], cached_property)
    assert "self._settings" in inspect.getsource(BaseConnectionHandler.__dict__["settings"].func)
    assert set(settings.DATABASES) <= set(connections.settings)
    assert callable(connections.configure_settings)


def test_django_walks_every_database_entry_for_atomic_requests():
    """m3saas.handlers replaces `BaseHandler.make_view_atomic`, which reads every entry of
    `connections.settings` for `ATOMIC_REQUESTS` on each request and honours `_non_atomic_requests`."""
    from django.core.handlers.base import BaseHandler

    source = inspect.getsource(BaseHandler.make_view_atomic)
    for part in ("connections.settings.items()", '"ATOMIC_REQUESTS"', "_non_atomic_requests", "transaction.atomic"):
        assert part in source


def test_django_walks_initialized_connections_through_all():
    """The per-request cost fix: close_old_connections and reset_queries call `all(initialized_only=True)`."""
    from django.db import close_old_connections, reset_queries

    for function in (close_old_connections, reset_queries):
        assert "initialized_only=True" in inspect.getsource(function)
    assert "initialized_only" in inspect.signature(ConnectionHandler.all).parameters


def test_database_wrapper_exposes_what_the_trims_read():
    """tenant_connections_trim reads `connection`, `settings_dict`, `in_atomic_block` and `alias`."""
    wrapper = connections["default"]
    for name in ("connection", "settings_dict", "in_atomic_block", "alias"):
        assert hasattr(wrapper, name)
    assert callable(BaseDatabaseWrapper.ensure_connection)


def test_migrate_command_has_the_hooks_the_tenant_migrate_overrides():
    """tenants/management/commands/migrate.py overrides `get_check_kwargs` and calls the executor's plan."""
    assert callable(MigrateCommand.get_check_kwargs)
    assert callable(MigrationExecutor.migration_plan)


def test_log_response_honours_has_been_logged():
    """m3saas/api.py sets `response._has_been_logged` so Django does not log a handled error twice."""
    assert "_has_been_logged" in inspect.getsource(log_response)
    assert hasattr(HttpResponse(), "status_code")


def test_pytest_django_keeps_the_real_ensure_connection(django_db_blocker):
    """conftest.py lets tests reach tenant aliases through the blocker's `_real_ensure_connection`."""
    assert callable(django_db_blocker._real_ensure_connection)


@pytest.mark.django_db
def test_pytest_django_names_its_database_fixture_helper(request):
    """conftest.py's `_allow_tenant_connections` looks for the `_django_db_helper` fixture."""
    assert "_django_db_helper" in request.fixturenames


def test_paho_client_has_the_private_queue_the_stats_read():
    """m3saas/mqtt.py reads `Client._out_messages` to count messages waiting for the broker."""
    client = paho.Client(callback_api_version=paho.CallbackAPIVersion.VERSION2)
    assert hasattr(client, "_out_messages")
    assert hasattr(client, "connect_timeout")
