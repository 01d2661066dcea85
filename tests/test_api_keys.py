"""Tenant API keys: module APIs need the tenant's key, unless a view is public on purpose."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.db import connections
from django.utils import timezone
from rest_framework.test import APIClient

from m3saas.access import RateLimit, ThrottledError
from modules.test.v1.models import Animal
from tenants.api_keys import api_key_create, api_key_revoke
from tenants.models import ApiKey, Tenant

pytestmark = pytest.mark.django_db
ROOT = Path(__file__).resolve().parents[1]


def _client(key: str, scheme: str = "Bearer") -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"{scheme} {key}")
    return client


def _refusal(response) -> tuple[int, dict, str | None]:
    return response.status_code, response.json(), response.get("WWW-Authenticate")


def _row(tenant) -> Tenant:
    return Tenant.objects.get(pk=tenant.id)


def test_production_default_requires_keys_and_a_malformed_setting_stops_start_up():
    unset = {"MODULE_API_ACCESS", "TENANT_RATE_LIMIT", "DJANGO_SETTINGS_MODULE", "CONFIG_FILE"}
    env = {k: v for k, v in os.environ.items() if k not in unset}
    env["SECRET_KEY"] = "x"
    script = "from django.conf import settings; print(settings.MODULE_API_ACCESS, settings.TENANT_RATE_LIMIT)"
    done = subprocess.run(
        [sys.executable, "manage.py", "shell", "-v", "0", "-c", script],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["keys", "600/min"]
    for name, value in (("MODULE_API_ACCESS", "open"), ("TENANT_RATE_LIMIT", "600/fortnight")):
        done = subprocess.run(
            [sys.executable, "manage.py", "check"], cwd=ROOT, env={**env, name: value}, capture_output=True, text=True
        )
        assert done.returncode != 0
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"M3SaaS cannot start: {name}: "), done.stderr


def test_a_call_without_a_key_is_401_and_reveals_nothing_of_the_tenant(make_tenant):
    tenant = make_tenant()
    anonymous = APIClient()
    known = _refusal(anonymous.get(f"/{tenant.id}/test/v1/animals"))
    assert known[0] == 401
    assert known[1] == {"error": {"code": "not_authenticated", "message": known[1]["error"]["message"]}}
    assert known[2] == 'Bearer realm="api"'
    for path in (
        "/999999/test/v1/animals",  # no such tenant
        f"/{tenant.id}/nothing/v1/animals",  # no such module
        f"/{tenant.id}/test/v7/animals",  # another version
        f"/{tenant.id}/tags/v1/tags",  # not subscribed
        f"/{tenant.id}/test/v1/no-such-route",
    ):
        assert _refusal(anonymous.get(path)) == known, path
    assert _refusal(anonymous.delete(f"/{tenant.id}/test/v1/animals/1")) == known


def test_the_tenants_key_opens_its_modules(make_tenant, tenant_key):
    tenant = make_tenant()
    key = tenant_key(tenant)
    created = _client(key).post(f"/{tenant.id}/test/v1/animals", {"name": "owl"}, format="json")
    assert created.status_code == 201
    assert Animal.objects.using(tenant.alias).filter(name="owl").exists()
    # `Api-Key <key>` works as well as `Bearer <key>`.
    assert _client(key, "Api-Key").get(f"/{tenant.id}/test/v1/animals").status_code == 200


@pytest.mark.parametrize(
    "header",
    [
        "Bearer m3s_abcdefgh_" + "x" * 40,  # unknown id
        "Bearer not-a-key",
        "Bearer ",
        "Basic dXNlcjpwYXNz",
        "Token 0123456789abcdef",
    ],
)
def test_a_wrong_key_is_401_like_no_key(make_tenant, header):
    tenant = make_tenant()
    expected = _refusal(APIClient().get(f"/{tenant.id}/test/v1/animals"))
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=header)
    assert _refusal(client.get(f"/{tenant.id}/test/v1/animals")) == expected


def test_a_key_with_a_wrong_secret_is_401(make_tenant, tenant_key):
    tenant = make_tenant()
    key = tenant_key(tenant)
    forged = key[:-4] + ("AAAA" if not key.endswith("AAAA") else "BBBB")
    assert _client(forged).get(f"/{tenant.id}/test/v1/animals").status_code == 401


def test_another_tenants_key_is_401_as_for_an_unknown_tenant(make_tenant, tenant_key):
    mine, theirs = make_tenant(), make_tenant()
    client = _client(tenant_key(mine))
    foreign = _refusal(client.get(f"/{theirs.id}/test/v1/animals"))
    assert foreign[0] == 401
    assert _refusal(client.get("/999999/test/v1/animals")) == foreign
    assert _refusal(client.post(f"/{theirs.id}/test/v1/animals", {"name": "x"}, format="json")) == foreign
    assert not Animal.objects.using(theirs.alias).filter(name="x").exists()


def test_a_revoked_key_is_401_from_the_next_request(make_tenant, tenant_key):
    tenant = make_tenant()
    key = tenant_key(tenant)
    client = _client(key)
    assert client.get(f"/{tenant.id}/test/v1/animals").status_code == 200
    api_key_revoke(key_id=key.split("_")[1])
    assert client.get(f"/{tenant.id}/test/v1/animals").status_code == 401


def test_an_expired_key_is_401(make_tenant, tenant_key):
    tenant = make_tenant()
    key = tenant_key(tenant, expires_at=timezone.now() + timedelta(days=1))
    client = _client(key)
    assert client.get(f"/{tenant.id}/test/v1/animals").status_code == 200
    row = ApiKey.objects.get(pk=key.split("_")[1])
    row.expires_at = timezone.now() - timedelta(seconds=1)
    row.save(update_fields=["expires_at"])
    assert client.get(f"/{tenant.id}/test/v1/animals").status_code == 401


def test_a_key_limited_to_other_modules_is_403(make_tenant, tenant_key):
    tenant = make_tenant(modules=[("test", 1), ("tags", 1)])
    client = _client(tenant_key(tenant, modules="tags"))
    assert client.get(f"/{tenant.id}/tags/v1/tags").status_code == 200
    response = client.get(f"/{tenant.id}/test/v1/animals")
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "permission_denied"


def test_a_read_only_key_reads_but_may_not_write(make_tenant, tenant_key):
    tenant = make_tenant()
    row = Animal.objects.using(tenant.alias).create(name="kept")
    client = _client(tenant_key(tenant, read_only=True))
    assert client.get(f"/{tenant.id}/test/v1/animals").status_code == 200
    assert client.head(f"/{tenant.id}/test/v1/animals").status_code == 200
    assert client.post(f"/{tenant.id}/test/v1/animals", {"name": "new"}, format="json").status_code == 403
    assert client.delete(f"/{tenant.id}/test/v1/animals/{row.pk}").status_code == 403
    assert list(Animal.objects.using(tenant.alias).values_list("name", flat=True)) == ["kept"]


def test_a_public_view_needs_no_key_and_the_view_knows_which_key_called(make_tenant, tenant_key):
    tenant = make_tenant()
    anonymous = APIClient().get(f"/{tenant.id}/test/v1.4/status")
    assert anonymous.status_code == 200
    assert anonymous.json() == {"module": "test", "version": "1.4", "api_key": None}
    key = tenant_key(tenant, modules="test", read_only=True)
    keyed = _client(key).get(f"/{tenant.id}/test/v1/status")
    assert keyed.json()["api_key"] == key.split("_")[1]
    # A key that does not open this module is not the caller here: the view sees no key.
    elsewhere = _client(tenant_key(tenant, modules="tags")).get(f"/{tenant.id}/test/v1/status")
    assert elsewhere.status_code == 200 and elsewhere.json()["api_key"] is None
    # A key that is sent must be valid, even where none is needed.
    assert _client("m3s_abcdefgh_" + "x" * 40).get(f"/{tenant.id}/test/v1/status").status_code == 401
    # Public does not make an unknown tenant or module answer.
    assert APIClient().get("/999999/test/v1/status").status_code == 404


def test_module_api_access_public_opens_every_module_and_check_warns(make_tenant, settings):
    from django.core.checks import run_checks

    tenant = make_tenant()
    assert not [m for m in run_checks() if m.id == "m3saas.W010"]
    settings.MODULE_API_ACCESS = "public"
    assert APIClient().post(f"/{tenant.id}/test/v1/animals", {"name": "open"}, format="json").status_code == 201
    assert _client("m3s_abcdefgh_" + "x" * 40).get(f"/{tenant.id}/test/v1/animals").status_code == 401
    warnings = [m for m in run_checks() if m.id == "m3saas.W010"]
    assert len(warnings) == 1 and "MODULE_API_ACCESS=public" in warnings[0].msg


def test_a_warm_keyed_request_makes_no_master_query_and_records_the_use_once(
    make_tenant, tenant_key, django_assert_num_queries
):
    tenant = make_tenant()
    key = tenant_key(tenant)
    client = _client(key)
    assert ApiKey.objects.get(pk=key.split("_")[1]).last_used_at is None
    assert client.get(f"/{tenant.id}/test/v1/animals").status_code == 200
    assert ApiKey.objects.get(pk=key.split("_")[1]).last_used_at is not None
    with django_assert_num_queries(0, connection=connections["default"]):
        for _ in range(3):
            assert client.get(f"/{tenant.id}/test/v1/animals").status_code == 200


def test_a_tenant_key_never_opens_the_operator_routes(make_tenant, tenant_key):
    tenant = make_tenant()
    client = _client(tenant_key(tenant))
    for path in ("/migrate", f"/{tenant.id}/migrate", "/admin/"):
        response = client.get(path)
        assert response.status_code in {302, 401, 403}, path
    assert client.post(f"/{tenant.id}/migrate").status_code in {401, 403}


# Rate limits --------------------------------------------------------------------------------


def test_over_the_tenant_limit_is_429_with_retry_after(make_tenant, tenant_key, settings):
    settings.TENANT_RATE_LIMIT = RateLimit(requests=3, seconds=60)
    tenant = make_tenant()
    first, second = _client(tenant_key(tenant)), _client(tenant_key(tenant))
    assert [c.get(f"/{tenant.id}/test/v1/animals").status_code for c in (first, second, first)] == [200] * 3
    refused = second.get(f"/{tenant.id}/test/v1/animals")
    assert refused.status_code == 429
    assert refused.json()["error"]["code"] == "throttled"
    assert 1 <= int(refused["Retry-After"]) <= 60
    # Health and operator routes are not limited by tenant limits.
    assert APIClient().get("/health").status_code == 200
    assert APIClient().get(f"/{tenant.id}/migrate").status_code == 401


def test_limits_are_per_tenant_and_a_tenants_own_limit_wins(make_tenant, tenant_key, settings):
    settings.TENANT_RATE_LIMIT = RateLimit(requests=2, seconds=60)
    busy, other = make_tenant(), make_tenant(rate_limit="4/min")
    busy_client, other_client = _client(tenant_key(busy)), _client(tenant_key(other))
    assert [busy_client.get(f"/{busy.id}/test/v1/animals").status_code for _ in range(3)] == [200, 200, 429]
    assert [other_client.get(f"/{other.id}/test/v1/animals").status_code for _ in range(5)] == [200] * 4 + [429]


def test_a_tenants_new_limit_holds_at_once_for_callers_whose_key_and_route_are_remembered(make_tenant, tenant_key):
    """The keyed route takes the tenant's limit from its remembered route: changing the limit in
    the admin must reach the very next request, not the next master generation."""
    from tenants.models import Tenant

    tenant = make_tenant(rate_limit="100/min")
    client = _client(tenant_key(tenant))
    assert [client.get(f"/{tenant.id}/test/v1/animals").status_code for _ in range(3)] == [200] * 3
    row = Tenant.objects.get(pk=tenant.id)
    row.rate_limit = "4/min"  # 3 already counted in this window
    row.save(update_fields=["rate_limit"])
    assert [client.get(f"/{tenant.id}/test/v1/animals").status_code for _ in range(2)] == [200, 429]
    row.rate_limit = "off"
    row.save(update_fields=["rate_limit"])
    assert client.get(f"/{tenant.id}/test/v1/animals").status_code == 200


def test_anonymous_calls_to_a_public_view_never_spend_the_keyed_callers_budget(make_tenant, tenant_key, settings):
    """Anyone may call a public view: they are counted apart (per client address), so they cannot
    lock a tenant's own software out."""
    settings.TENANT_RATE_LIMIT = RateLimit(requests=2, seconds=60)
    tenant = make_tenant()
    anonymous = [APIClient().get(f"/{tenant.id}/test/v1/status").status_code for _ in range(3)]
    assert anonymous == [200, 200, 429]
    assert _client(tenant_key(tenant)).get(f"/{tenant.id}/test/v1/animals").status_code == 200
    elsewhere = APIClient(REMOTE_ADDR="192.0.2.7").get(f"/{tenant.id}/test/v1/status")
    assert elsewhere.status_code == 200


def test_a_keys_own_limit_applies_on_top_of_the_tenants(make_tenant, tenant_key):
    tenant = make_tenant()
    limited, free = _client(tenant_key(tenant, rate_limit="1/min")), _client(tenant_key(tenant))
    assert [limited.get(f"/{tenant.id}/test/v1/animals").status_code for _ in range(2)] == [200, 429]
    assert free.get(f"/{tenant.id}/test/v1/animals").status_code == 200


def test_on_the_real_redis_the_window_counter_expires_and_429_says_when_to_retry(make_tenant, tenant_key, settings):
    import socket
    import uuid

    import redis as redis_client
    from django.test import override_settings

    from conftest import IN_CI

    try:
        socket.create_connection(("127.0.0.1", 6379), timeout=2).close()
    except OSError:
        if IN_CI:
            pytest.fail("Redis not reachable at 127.0.0.1:6379 (CI=true: not skipped)")
        pytest.skip("Redis not reachable at 127.0.0.1:6379: start redis-server to run this test")
    tenant = make_tenant()
    client = _client(tenant_key(tenant))
    server = redis_client.Redis(host="127.0.0.1", port=6379, db=0)
    redis = {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": "redis://127.0.0.1:6379/0",
        "KEY_PREFIX": f"m3saas-test-{uuid.uuid4().hex}",
    }
    settings.TENANT_RATE_LIMIT = RateLimit(requests=2, seconds=3600)
    with override_settings(CACHES={"default": redis}):
        try:
            statuses = [client.get(f"/{tenant.id}/test/v1/animals") for _ in range(3)]
            assert [r.status_code for r in statuses] == [200, 200, 429]
            assert 1 <= int(statuses[-1]["Retry-After"]) <= 3600
            counters = list(server.scan_iter(match=f"{redis['KEY_PREFIX']}:*m3saas:rate:tenant:{tenant.id}:*"))
            assert len(counters) == 1
            assert 0 < int(server.ttl(counters[0])) <= 7200
        finally:
            # Only this test's keys: `cache.clear()` would empty the whole Redis database.
            for name in server.scan_iter(match=f"{redis['KEY_PREFIX']}:*"):
                server.delete(name)


def test_a_malformed_limit_is_refused(make_tenant):
    tenant = make_tenant(provision=False)
    from tenants.api_keys import ApiKeyError

    with pytest.raises(ApiKeyError, match="rate_limit"):
        api_key_create(tenant=_row(tenant), rate_limit="lots")


# Commands -----------------------------------------------------------------------------------


def _command(*args: str) -> list[str]:
    from io import StringIO

    out = StringIO()
    call_command("tenant_key", *args, stdout=out)
    return out.getvalue().strip().splitlines()


def test_tenant_key_create_prints_the_key_alone_on_its_last_line(make_tenant):
    tenant = make_tenant()
    lines = _command("create", tenant.name, "--name", "ci", "--modules", "test", "--read-only")
    key = lines[-1]
    assert key.startswith("m3s_") and " " not in key
    assert "shown only this once" in lines[-2]
    row = ApiKey.objects.get(pk=key.split("_")[1])
    assert (row.tenant_id, row.name, row.modules, row.read_only) == (tenant.id, "ci", "test", True)
    assert key not in row.digest and row.digest != key
    assert _client(key).get(f"/{tenant.id}/test/v1/animals").status_code == 200
    assert _client(key).post(f"/{tenant.id}/test/v1/animals", {"name": "x"}, format="json").status_code == 403


def test_tenant_key_list_shows_keys_without_secrets_and_revoke_refuses_the_key(make_tenant):
    tenant = make_tenant()
    key = _command("create", str(tenant.id), "--name", "app", "--expires", "2099-01-31")[-1]
    key_id = key.split("_")[1]
    listed = _command("list", str(tenant.id))
    assert len(listed) == 1 and listed[0].startswith(f"{key_id}  active") and "2099-01-31" in listed[0]
    assert key.split("_")[2] not in "\n".join(listed)
    assert _command("revoke", key_id) == [f"API key {key_id} of tenant {_row(tenant)} is revoked."]
    assert "revoked" in _command("list", tenant.name)[0]
    assert _client(key).get(f"/{tenant.id}/test/v1/animals").status_code == 401


def test_each_module_schema_declares_the_key_scheme_for_swagger_ui():
    schema = APIClient().get("/schema/test/v1/", {"format": "json"}).json()
    scheme = schema["components"]["securitySchemes"]["TenantApiKey"]
    assert (scheme["type"], scheme["scheme"]) == ("http", "bearer")
    operations = {(path, method): op for path, ops in schema["paths"].items() for method, op in ops.items()}
    listing = operations[("/{tenant_id}/test/v{version}/animals", "get")]
    assert listing["security"] == [{"TenantApiKey": []}]
    assert {"401", "403", "429"} <= set(listing["responses"])
    # The public view: the key is optional.
    assert operations[("/{tenant_id}/test/v{version}/status", "get")]["security"] == [{"TenantApiKey": []}, {}]
    assert APIClient().get("/schema/test/v1/docs/").status_code == 200


def test_the_command_refuses_a_key_scoped_to_an_unknown_module(make_tenant):
    from django.core.management import CommandError, call_command

    tenant = make_tenant(provision=False)
    with pytest.raises(CommandError, match=r"^modules: No installed module 'nosuch'; installed: .*test"):
        call_command("tenant_key", "create", str(tenant.id), "--modules", "test,nosuch")
    assert not ApiKey.objects.exists()


def _made_up() -> str:
    import secrets
    import string

    alphabet = string.ascii_lowercase + string.digits
    return "m3s_" + "".join(secrets.choice(alphabet) for _ in range(8)) + "_" + "x" * 40


def _master_queries(client: APIClient, path: str) -> int:
    from django.db import connections
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connections["default"]) as queries:
        assert client.get(path).status_code == 401
    return len(queries)


def test_made_up_key_ids_cost_no_master_query(make_tenant, tenant_key):
    """Each request of a flood of made-up keys carries another random id: none reaches the master."""
    tenant = make_tenant()
    tenant_key(tenant)
    path = f"/{tenant.id}/test/v1/animals"
    _master_queries(_client(_made_up()), path)  # the first request of this generation reads the id index
    assert [_master_queries(_client(_made_up()), path) for _ in range(5)] == [0] * 5


def test_a_key_made_after_the_index_was_cached_works_at_once(make_tenant, tenant_key):
    tenant = make_tenant()
    path = f"/{tenant.id}/test/v1/animals"
    _master_queries(_client(_made_up()), path)
    assert _client(tenant_key(tenant)).get(path).status_code == 200


def test_past_the_index_unknown_ids_are_remembered_briefly_boundedly_and_per_generation(
    make_tenant, tenant_key, monkeypatch
):
    """Without an index (many keys), an unknown id costs one query, then none for a while; a key
    made later with that very id is found at once (making it changed the generation)."""
    from m3saas.access import key_digest
    from tenants import api_keys

    monkeypatch.setattr(api_keys, "KEY_INDEX_MAX", 0)
    monkeypatch.setattr(api_keys, "UNKNOWN_ID_MAX", 3)
    tenant = make_tenant()
    tenant_key(tenant)
    path = f"/{tenant.id}/test/v1/animals"
    made_up = _made_up()
    _master_queries(_client(made_up), path)
    assert _master_queries(_client(made_up), path) == 0
    for _ in range(5):
        _master_queries(_client(_made_up()), path)
    assert len(api_keys._unknown) == 3  # bounded: the oldest went first
    assert made_up.split("_")[1] not in api_keys._unknown
    remembered = _made_up()
    _master_queries(_client(remembered), path)
    ApiKey.objects.create(id=remembered.split("_")[1], tenant_id=tenant.id, digest=key_digest(remembered))
    assert _client(remembered).get(path).status_code == 200
    monkeypatch.setattr(api_keys, "UNKNOWN_ID_SECONDS", 0.0)
    expired = _made_up()
    _master_queries(_client(expired), path)
    assert _master_queries(_client(expired), path) > 0  # its time was up: asked again


def test_a_process_takes_its_share_of_a_large_limit_and_never_exceeds_it(monkeypatch):
    """Large limits are counted a share at a time (one cache `incr` per share); several processes
    (here: three tables of shares) together never let more than the limit through."""
    import uuid

    from django.core.cache import cache

    from m3saas import access

    limit = RateLimit(requests=1000, seconds=60)
    monkeypatch.setattr(access.time, "time", lambda: 120.5 * 60)  # one window throughout
    scope = f"tenant:share-{uuid.uuid4().hex}"
    incrs: list[int] = []
    real_incr = cache.incr

    def incr(key: str, delta: int = 1, **kwargs: Any) -> int:
        incrs.append(delta)
        return real_incr(key, delta, **kwargs)

    monkeypatch.setattr(cache, "incr", incr)
    processes: list[dict[str, int]] = [{}, {}, {}]
    served = 0
    for i in range(1500):
        monkeypatch.setattr(access, "_shares", processes[i % 3])
        try:
            access.rate_limit_hit(scope, limit)
        except ThrottledError:
            continue
        served += 1
    share = 1000 // access.RATE_SHARE_DIVISOR
    assert share > 1
    assert 1000 - 3 * share <= served <= 1000
    # A round trip per share, not per request; a refusal once per process, then none.
    assert len(incrs) <= 1000 / share + 3 + 3


def test_a_small_limit_is_counted_request_by_request(monkeypatch):
    import uuid

    from m3saas import access

    limit = RateLimit(requests=5, seconds=60)
    monkeypatch.setattr(access.time, "time", lambda: 60.5 * 60)
    scope = f"tenant:small-{uuid.uuid4().hex}"
    results = []
    for _ in range(7):
        try:
            access.rate_limit_hit(scope, limit)
            results.append(200)
        except ThrottledError:
            results.append(429)
    assert results == [200] * 5 + [429] * 2


def test_a_limit_raised_mid_window_applies_at_once(monkeypatch):
    """A spent window is refused locally, but only under the limit that spent it."""
    import uuid

    from m3saas import access

    monkeypatch.setattr(access.time, "time", lambda: 10.5 * 86400)
    scope = f"tenant:raised-{uuid.uuid4().hex}"
    small, large = RateLimit(requests=2, seconds=86400), RateLimit(requests=1000, seconds=86400)
    access.rate_limit_hit(scope, small)
    access.rate_limit_hit(scope, small)
    with pytest.raises(ThrottledError):
        access.rate_limit_hit(scope, small)
    access.rate_limit_hit(scope, large)  # the counter holds 3 (2 served + 1 refused) of 1000


def test_a_verified_key_is_looked_up_once_per_master_generation(make_tenant, tenant_key, settings, monkeypatch):
    import tenants.api_keys

    settings.TENANT_CACHE_TIMEOUT = 300
    tenant = make_tenant()
    key = tenant_key(tenant)
    lookups: list[str] = []
    real = tenants.api_keys.api_key_info_get

    def counted(*, key_id: str) -> Any:
        lookups.append(key_id)
        return real(key_id=key_id)

    monkeypatch.setattr(tenants.api_keys, "api_key_info_get", counted)
    client = _client(key)
    for _ in range(3):
        assert client.get(f"/{tenant.id}/test/v1/animals").status_code == 200
    assert len(lookups) == 1
    make_tenant()  # any master change: the key is looked up again
    assert client.get(f"/{tenant.id}/test/v1/animals").status_code == 200
    assert len(lookups) == 2


def test_a_verified_key_still_expires_on_time(make_tenant, tenant_key, settings, monkeypatch):
    settings.TENANT_CACHE_TIMEOUT = 300
    tenant = make_tenant()
    expires = timezone.now() + timedelta(minutes=5)
    client = _client(tenant_key(tenant, expires_at=expires))
    assert client.get(f"/{tenant.id}/test/v1/animals").status_code == 200
    monkeypatch.setattr(timezone, "now", lambda: expires + timedelta(seconds=1))
    assert client.get(f"/{tenant.id}/test/v1/animals").status_code == 401


def test_a_verified_key_opens_nothing_for_its_id_with_another_secret_or_for_another_tenant(
    make_tenant, tenant_key, settings
):
    settings.TENANT_CACHE_TIMEOUT = 300
    tenant, other = make_tenant(), make_tenant()
    key = tenant_key(tenant)
    assert _client(key).get(f"/{tenant.id}/test/v1/animals").status_code == 200
    forged = key[:-4] + ("AAAA" if not key.endswith("AAAA") else "BBBB")
    assert _client(forged).get(f"/{tenant.id}/test/v1/animals").status_code == 401
    assert _client(key).get(f"/{other.id}/test/v1/animals").status_code == 401
    assert _client(key).get(f"/{tenant.id}/test/v1/animals").status_code == 200


def test_a_verified_key_expires_with_the_cached_record_it_was_checked_against(make_tenant, tenant_key, settings):
    """A revocation by another process reaches this one when the cached record expires (per-process
    cache): a key verified later against that same record must not outlive it."""
    import time

    settings.TENANT_CACHE_TIMEOUT = 1
    tenant = make_tenant()
    key = tenant_key(tenant)
    forged = key[:-4] + ("AAAA" if not key.endswith("AAAA") else "BBBB")
    assert _client(forged).get(f"/{tenant.id}/test/v1/animals").status_code == 401  # caches the record
    time.sleep(0.6)
    assert _client(key).get(f"/{tenant.id}/test/v1/animals").status_code == 200  # verified from the cache
    ApiKey.objects.filter(pk=key.split("_")[1]).update(revoked_at=timezone.now())  # another process's revocation
    time.sleep(0.6)
    assert _client(key).get(f"/{tenant.id}/test/v1/animals").status_code == 401


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("", None),
        ("Bearer m3s_k", "m3s_k"),
        ("Bearer  m3s_k ", "m3s_k"),
        ("  Bearer m3s_k", "m3s_k"),
        ("bearer m3s_k", "m3s_k"),
        ("BEARER m3s_k", "m3s_k"),
        ("Api-Key m3s_k", "m3s_k"),
        ("Bearer ", ""),
        ("Bearer", ""),
        ("Basic dXNlcjpwYXNz", ""),
        ("Token m3s_k", ""),
    ],
)
def test_the_key_is_read_from_either_scheme_in_any_case_and_anything_else_counts_as_a_failed_try(header, expected):
    from m3saas.access import key_from_header

    assert key_from_header(header) == expected
