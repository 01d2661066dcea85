"""Engine adapters: the configured backend's adapter, and settings entries Django can use as they are."""

from __future__ import annotations

import pytest
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import DEFAULT_DB_ALIAS, connections
from django.db.utils import ConnectionHandler

from m3saas.conf import parse_config
from m3saas.engines import engine, engine_for
from m3saas.engines.mysql import MySQLEngine
from m3saas.engines.sqlite import SQLiteEngine
from m3saas.passwords import password_encrypt
from m3saas.tenancy.connections import TENANT_MARK, tenant_database_settings


def test_engine_is_the_adapter_of_the_configured_backend():
    adapter = engine()
    assert adapter.vendor == settings.M3SAAS_CONFIG.database.backend == connections[DEFAULT_DB_ALIAS].vendor
    assert isinstance(adapter, MySQLEngine if settings.M3SAAS_CONFIG.is_mysql else SQLiteEngine)


def test_an_unknown_vendor_has_no_adapter():
    with pytest.raises(ImproperlyConfigured, match="oracle"):
        engine_for("oracle")


def test_tenant_entry_has_every_key_of_djangos_own_entries():
    """An incomplete entry fails only later, with `KeyError: 'TIME_ZONE'`, when a connection opens."""
    entry = tenant_database_settings(name="entry_check", user="entry_check", password=password_encrypt("pw"))
    master = connections[DEFAULT_DB_ALIAS].settings_dict
    assert set(master) - set(entry) == set()
    assert entry["ENGINE"] == master["ENGINE"]
    assert entry[TENANT_MARK] is True
    assert entry["ATOMIC_REQUESTS"] is False


@pytest.mark.parametrize("vendor", ["mysql", "sqlite"])
def test_each_adapter_builds_entries_of_its_own_vendor(vendor, tmp_path):
    config = parse_config(
        "test",
        {
            "tenants": {
                "database": {
                    "backend": vendor,
                    "host": "db.example",
                    "database": "master_db" if vendor == "mysql" else str(tmp_path / "master.sqlite3"),
                    "user": "master_user",
                    "password": "secret",
                }
            },
        },
    )
    adapter = engine_for(vendor)
    handler = ConnectionHandler(
        {
            DEFAULT_DB_ALIAS: adapter.master_settings(config, conn_max_age=0, connect_timeout=5),
            "entry_check": adapter.tenant_settings(
                config,
                name="entry_check",
                user="entry_check",
                password=password_encrypt("pw"),
                server=config.default_server,
            ),
        }
    )
    for alias in (DEFAULT_DB_ALIAS, "entry_check"):
        wrapper = handler[alias]  # made, not connected
        assert wrapper.vendor == vendor
        assert "TIME_ZONE" in wrapper.settings_dict
