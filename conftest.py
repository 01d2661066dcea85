"""Shared test set-up: the backend pass, the services' availability, tenant fixtures.

Django and project imports sit inside the hooks and fixtures: this file is imported before
pytest-django has configured the settings.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, NoReturn, cast

import pytest

if TYPE_CHECKING:
    from m3saas.tenancy.info import TenantInfo

IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def skip_or_fail(message: str) -> NoReturn:
    """Skip a test whose tool or service is missing; fail it under CI=true, where it must run."""
    if IN_CI:
        pytest.fail(message + " (CI=true: not skipped)")
    pytest.skip(message)


def _reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=2):
            return True
    except OSError:
        return False


def _mysql_problem() -> str | None:
    """Why the configured MariaDB cannot be used, or None when it can."""
    from django.conf import settings

    config = settings.M3SAAS_CONFIG
    if not config.is_mysql:
        return None
    db = config.database
    if not _reachable(db.host, db.port):
        return f"MariaDB is not reachable at {db.host}:{db.port}"
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    from django.conf import settings

    if not settings.M3SAAS_CONFIG.is_mysql:
        # MariaDB-only tests belong to the MariaDB pass (`make test` runs both passes).
        kept = [i for i in items if i.get_closest_marker("mariadb") is None]
        deselected = [i for i in items if i.get_closest_marker("mariadb") is not None]
        if deselected:
            config.hook.pytest_deselected(items=deselected)
            items[:] = kept
        return
    problem = _mysql_problem()
    if problem is None:
        return
    if IN_CI:
        pytest.exit(f"{problem}; under CI=true the MariaDB tests must run, not skip.", returncode=1)
    skip = pytest.mark.skip(reason=f"{problem}: start MariaDB (see README) to run this pass")
    for item in items:
        item.add_marker(skip)


@pytest.fixture(autouse=True)
def _allow_tenant_connections(request: pytest.FixtureRequest) -> Iterator[None]:
    """Let tests reach tenant databases, which `make_tenant` creates and drops itself.

    Django's test case forbids connections to aliases not in its `databases`, fixed before
    the test registers its tenants; tenant aliases are exempted, every other alias is not.
    """
    if "_django_db_helper" not in request.fixturenames:
        yield
        return
    request.getfixturevalue("_django_db_helper")
    from django.db.backends.base.base import BaseDatabaseWrapper

    from m3saas.tenancy.connections import TENANT_MARK

    guarded = BaseDatabaseWrapper.ensure_connection
    # pytest-django keeps the unpatched method while it blocks database access.
    real = request.getfixturevalue("django_db_blocker")._real_ensure_connection

    def ensure_connection(self: BaseDatabaseWrapper) -> None:
        if self.settings_dict.get(TENANT_MARK):
            return real(self)
        return guarded(self)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(BaseDatabaseWrapper, "ensure_connection", ensure_connection)
        yield


@pytest.fixture(autouse=True)
def _fresh_cache() -> Iterator[None]:
    """Cached master reads must not leak from one test's (rolled back) rows into the next.

    The installation id too: a transactional test's flush deletes its row, and a process started
    by the next test (a second `manage.py`) must read the same id as this one.
    """
    from django.core.cache import cache

    from m3saas.installation import installation_id_forget
    from m3saas.traffic import traffic_flush

    def clear() -> None:
        from django.conf import settings

        from m3saas.access import rate_limit_shares_forget

        rate_limit_shares_forget()  # shares of counters the cache no longer holds

        # A test pointing the cache at a shared Redis cleans its own keys: FLUSHDB would empty
        # every other suite's keys and queues on that server too.
        if "redis" not in settings.CACHES["default"]["BACKEND"].lower():
            cache.clear()

    traffic_flush()  # this process's buffered request counts go with the rest
    clear()
    installation_id_forget()
    yield
    traffic_flush()
    clear()


@pytest.fixture
def mqtt_broker() -> tuple[str, int]:
    """The real broker's address; skips (fails under CI=true) when it does not answer."""
    host = os.environ.get("MQTT_TEST_HOST", "127.0.0.1")
    port = int(os.environ.get("MQTT_TEST_PORT", "1883"))
    if not _reachable(host, port):
        message = f"MQTT broker not reachable at {host}:{port}: start mosquitto to run this test"
        if IN_CI:
            pytest.fail(message + " (CI=true: not skipped)")
        pytest.skip(message)
    return host, port


MakeTenant = Callable[..., "TenantInfo"]


@pytest.fixture
def make_tenant(db: None) -> Iterator[MakeTenant]:
    """Create tenants through the production code path; drop their databases afterwards.

    `make_tenant(modules=[("test", 1)], provision=True, **fields)` → `TenantInfo`.
    """
    from tenants.models import Tenant
    from tenants.selectors import tenant_info_from_row
    from tenants.services import tenant_database_drop, tenant_provision
    from tenants.tests.factories import TenantFactory

    created: list[TenantInfo] = []

    def make(
        *,
        modules: list[tuple[str, int]] | tuple[tuple[str, int], ...] = (("test", 1),),
        provision: bool = True,
        **fields: Any,
    ) -> TenantInfo:
        tenant = cast(Tenant, TenantFactory(modules=list(modules), **fields))
        info = tenant_info_from_row(tenant)
        created.append(info)
        if provision:
            tenant_provision(tenant=info)
        return info

    yield make
    for info in created:
        tenant_database_drop(tenant=info)


@pytest.fixture(autouse=True)
def _module_apis_public(request: pytest.FixtureRequest) -> None:
    """Suites marked `module_apis_public` test something other than access (routing, migrations,
    MQTT, …) and call module APIs without a key, as `MODULE_API_ACCESS=public` allows. Every
    other test runs with keys on, the production default; the access rules are tested in
    tests/test_api_keys.py."""
    if request.node.get_closest_marker("module_apis_public") is not None:
        request.getfixturevalue("settings").MODULE_API_ACCESS = "public"


TenantClient = Callable[..., Any]


@pytest.fixture
def tenant_key(db: None) -> Callable[..., str]:
    """`tenant_key(tenant, **options)` → a new API key of `tenant` (options as `api_key_create`'s)."""
    from tenants.api_keys import api_key_create
    from tenants.models import Tenant

    def make(tenant: TenantInfo, **options: Any) -> str:
        return api_key_create(tenant=Tenant.objects.get(pk=tenant.id), **options)[1]

    return make


@pytest.fixture
def tenant_client(tenant_key: Callable[..., str]) -> TenantClient:
    """`tenant_client(tenant, **key_options)` → an `APIClient` that sends a new key of `tenant`."""
    from rest_framework.test import APIClient

    def make(tenant: TenantInfo, **options: Any) -> APIClient:
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {tenant_key(tenant, **options)}")
        return client

    return make


@pytest.fixture(scope="session")
def second_mariadb() -> Iterator[Any]:
    """A second real MariaDB server (`tests/mariadb_second.py`): the one on 127.0.0.1:3307, else
    one started for the session and stopped at its end. Skips (fails under CI=true) without
    `mariadbd`, and outside the MariaDB pass."""
    from django.conf import settings

    from tests.mariadb_second import missing_tools, second_server_up

    if not settings.M3SAAS_CONFIG.is_mysql:
        pytest.skip("a second database server is for the MariaDB pass")
    if not _reachable("127.0.0.1", 3307):
        problem = missing_tools()
        if problem:
            skip_or_fail(problem)
    try:
        server = second_server_up()
    except (RuntimeError, OSError) as exc:
        skip_or_fail(f"the second MariaDB could not be started: {exc}")
    yield server
    server.stop()


SECOND_SERVER = "db2"


@pytest.fixture
def two_servers(second_mariadb: Any, settings: Any, db: None) -> Iterator[str]:
    """The config with a second server `db2` (the second MariaDB) in `tenants.servers`; yields its name.

    List it before `make_tenant` in a test's arguments: its config must outlive the tenants'
    clean-up, which drops their databases on `db2`.
    """
    from dataclasses import replace

    from m3saas.conf import ServerConfig

    db2 = ServerConfig(
        name=SECOND_SERVER,
        host=second_mariadb.host,
        port=second_mariadb.port,
        user=second_mariadb.user,
        password=second_mariadb.password,
    )
    settings.M3SAAS_CONFIG = replace(settings.M3SAAS_CONFIG, servers=(db2,))
    yield SECOND_SERVER
