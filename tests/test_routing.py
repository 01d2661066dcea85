"""Tenant routing: who gets a 404, which version serves, and what a warm request costs."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from django.db import connections
from django.test.utils import CaptureQueriesContext
from django.urls import Resolver404
from rest_framework.test import APIClient

from m3saas.tenancy.context import tenant_current_or_none

pytestmark = [pytest.mark.django_db, pytest.mark.module_apis_public]

# Unknown tenant, module, subscription or version: from outside, one answer (the detail is logged).
NOT_FOUND = {"error": {"code": "not_found", "message": "Not found."}}


@pytest.fixture
def client() -> APIClient:
    return APIClient()


def test_unknown_tenant_is_404_json(client, make_tenant):
    response = client.get("/987654/test/v1/animals")
    assert response.status_code == 404
    assert response.json() == NOT_FOUND


def test_unknown_module_is_404_json(client, make_tenant):
    tenant = make_tenant()
    response = client.get(f"/{tenant.id}/nosuchmodule/v1/animals")
    assert response.status_code == 404
    assert response.json() == NOT_FOUND


def test_unsubscribed_module_is_404(client, make_tenant):
    tenant = make_tenant(modules=[])
    response = client.get(f"/{tenant.id}/test/v1/animals")
    assert response.status_code == 404
    assert response.json() == NOT_FOUND


@pytest.mark.parametrize("suffix", ["", "/", "/animals", "/x1/animals", "/V1/animals", "/v1z/animals", "/v/animals"])
def test_missing_or_malformed_version_is_404(client, make_tenant, suffix):
    tenant = make_tenant()
    response = client.get(f"/{tenant.id}/test{suffix}")
    assert response.status_code == 404
    assert response.json() == NOT_FOUND


def test_other_major_version_than_subscribed_is_404(client, make_tenant):
    tenant = make_tenant(modules=[("test", 1)])
    response = client.get(f"/{tenant.id}/test/v2/animals")
    assert response.status_code == 404
    assert response.json() == NOT_FOUND


def test_a_refused_tenant_route_looks_like_any_unknown_route_and_its_reason_is_logged(client, make_tenant, caplog):
    tenant = make_tenant(modules=[("test", 1)])
    paths = {
        "tenant_not_found": "/987654/test/v1/animals",
        "module_not_found": f"/{tenant.id}/nosuchmodule/v1/animals",
        "module_not_subscribed": f"/{tenant.id}/tags/v1/tags",
        "version_not_found": f"/{tenant.id}/test/v2/animals",
    }
    with caplog.at_level(logging.INFO, logger="m3saas.api"):
        answers = {(r.status_code, r.content) for r in (client.get(path) for path in paths.values())}
    unknown_route = client.get(f"/{tenant.id}/test/v1/nothing-here")
    assert answers == {(404, unknown_route.content)}
    assert unknown_route.json() == NOT_FOUND
    logged = " ".join(r.getMessage() for r in caplog.records if r.levelno in (logging.INFO, logging.WARNING))
    assert all(code in logged for code in paths)
    assert f"Tenant {tenant.id} uses module 'test' at v1, not v2." in logged


def test_v10_is_not_served_by_v1(client, make_tenant):
    tenant = make_tenant(modules=[("test", 1)])
    assert client.get(f"/{tenant.id}/test/v10/animals").status_code == 404


def test_v2_subscriber_gets_the_v2_shape(client, make_tenant):
    tenant = make_tenant(modules=[("test", 2)])
    response = client.post(f"/{tenant.id}/test/v2.3/animals", {"name": "yak", "species": "bovid"}, format="json")
    assert response.status_code == 201
    assert response.json()["species"] == "bovid"
    assert client.get(f"/{tenant.id}/test/v1/animals").status_code == 404


def test_unknown_route_inside_a_module_is_404_json(client, make_tenant):
    tenant = make_tenant()
    response = client.get(f"/{tenant.id}/test/v1/nothing-here")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_context_is_reset_after_the_request(client, make_tenant):
    tenant = make_tenant()
    client.get(f"/{tenant.id}/test/v1/animals")
    assert tenant_current_or_none() is None


def test_module_version_reaches_the_view_as_a_comparable_version(client, make_tenant, monkeypatch):
    from modules.test.v1 import views

    seen = []
    original = views.AnimalListView.get

    def spy(self, request, **kwargs):
        seen.append(request.module_version)
        return original(self, request, **kwargs)

    monkeypatch.setattr(views.AnimalListView, "get", spy)
    tenant = make_tenant()
    client.get(f"/{tenant.id}/test/v1.10/animals")
    assert str(seen[0]) == "1.10"
    assert seen[0] > "1.9"
    assert seen[0].major == 1


def test_warm_request_makes_no_master_query(client, make_tenant):
    tenant = make_tenant()
    url = f"/{tenant.id}/test/v1/animals"
    assert client.get(url).status_code == 200  # warms the cache and the connection alias
    with (
        CaptureQueriesContext(connections["default"]) as master,
        CaptureQueriesContext(connections[tenant.alias]) as tenant_db,
    ):
        assert client.get(url).status_code == 200
    assert len(master) == 0, [q["sql"] for q in master.captured_queries]
    assert len(tenant_db) == 1, [q["sql"] for q in tenant_db.captured_queries]


def test_subscription_change_is_seen_on_the_next_request(client, make_tenant):
    from subscriptions.models import Subscription

    tenant = make_tenant(modules=[("test", 1)])
    url = f"/{tenant.id}/test/v1/animals"
    assert client.get(url).status_code == 200
    Subscription.objects.filter(tenant_id=tenant.id).delete()
    assert client.get(url).status_code == 404


def test_sub_directory_prefixes_every_route():
    from m3saas.tenancy.paths import tenant_path_regex

    regex = tenant_path_regex("api/saas")
    assert regex.match("/api/saas/1/test/v1/animals")
    assert not regex.match("/1/test/v1/animals")


def test_master_change_is_invalidated_again_when_it_commits(make_tenant, django_capture_on_commit_callbacks):
    """A reader that cached the old rows before the commit must not keep them."""
    from m3saas.tenancy.cache import master_cached
    from subscriptions.models import Subscription

    tenant = make_tenant(modules=[("test", 1)])
    with django_capture_on_commit_callbacks(execute=True):
        Subscription.objects.filter(tenant_id=tenant.id).update(version=2)  # no signal: a raw change
        Subscription.objects.get(tenant_id=tenant.id).save()  # the signal, inside the transaction
        master_cached("probe", lambda: "stale")  # a concurrent reader before the commit
    assert master_cached("probe", lambda: "fresh") == "fresh"


def test_polling_a_tenant_being_migrated_keeps_other_tenants_cached(client, make_tenant, settings):
    from django.utils import timezone

    from tenants.models import Tenant

    settings.AUTO_MIGRATION = True
    ready, busy = make_tenant(), make_tenant()
    Tenant.objects.filter(pk=busy.id).update(schema_state="migrating", schema_state_at=timezone.now())
    assert client.get(f"/{ready.id}/test/v1/animals").status_code == 200  # warm
    response = client.get(f"/{busy.id}/test/v1/animals")
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "tenant_migrating"
    with CaptureQueriesContext(connections["default"]) as master:
        assert client.get(f"/{ready.id}/test/v1/animals").status_code == 200
    assert len(master) == 0, [q["sql"] for q in master.captured_queries]


# --- the module mounts behind one resolver (issue 16) -----------------------------------------


def _reference_resolver():
    """The module mounts listed one by one under the root, as Django would try them."""
    from django.urls.resolvers import RegexPattern, URLResolver

    from m3saas.modules.urls import module_urlpatterns

    return URLResolver(RegexPattern(r"^/"), module_urlpatterns())


@pytest.mark.parametrize(
    "path",
    [
        "/1/test/v1/animals",
        "/1/test/v1.4/animals",
        "/1/test/v1.0.1/animals/7",
        "/12/test/v2/animals",
        "/1/notes/v1/notes",
        "/1/tags/v1/tags",
    ],
)
def test_module_mounts_resolve_as_the_list_of_mounts_would(path):
    from django.urls import get_resolver

    ours, reference = get_resolver().resolve(path), _reference_resolver().resolve(path)
    assert ours.func is reference.func
    assert (ours.args, ours.kwargs, ours.url_name) == (reference.args, reference.kwargs, reference.url_name)
    assert (ours.namespaces, ours.app_names, ours.route) == (reference.namespaces, reference.app_names, reference.route)


@pytest.mark.parametrize(
    "path", ["/1/test/v10/animals", "/1/test/v01/animals", "/1/test/v1x/animals", "/1/test/v1./animals", "/1/no/v1/x"]
)
def test_module_mounts_refuse_what_no_mount_matches(path):
    from django.urls import get_resolver

    with pytest.raises(Resolver404):
        _reference_resolver().resolve(path)
    with pytest.raises(Resolver404):
        get_resolver().resolve(path)


def test_only_the_mount_a_path_names_is_asked(monkeypatch):
    """A request to one module version does not try the others (it did, in name order, each
    failing one raising and catching a Resolver404)."""
    from django.urls import get_resolver

    from m3saas.modules.registry import module_labels
    from m3saas.modules.urls import ModuleDispatch

    labels = module_labels()
    (dispatch,) = get_resolver().url_patterns
    assert isinstance(dispatch, ModuleDispatch)
    dispatch._resolved.clear()  # paths other tests resolved are remembered: ask the mounts again
    mounts = [p for p in dispatch.url_patterns if getattr(p, "namespace", None) in labels]
    assert len(mounts) >= 3
    asked: list[str] = []

    def counting(mount: Any) -> Any:
        resolve = mount.resolve

        def asking(path: str) -> Any:
            asked.append(mount.namespace)
            return resolve(path)

        return asking

    for mount in mounts:
        monkeypatch.setattr(mount, "resolve", counting(mount))
    assert get_resolver().resolve("/1/test/v2/animals").namespace == "test_v2"
    assert asked == ["test_v2"]
    asked.clear()
    # What the named mount does not match is resolved over the whole list, as before.
    assert get_resolver().resolve("/health").url_name == "health"
    assert asked == sorted(labels)
    asked.clear()
    with pytest.raises(Resolver404):
        get_resolver().resolve("/1/test/v1./animals")  # names test v1, which does not match it
    assert asked == ["test_v1", *sorted(labels)]


def test_module_routes_still_reverse():
    from django.urls import reverse

    assert reverse("test_v1:animal-list", kwargs={"tenant_id": 3, "version": "1.4"}) == "/3/test/v1.4/animals"
    assert reverse("test_v2:animal-detail", kwargs={"tenant_id": 3, "version": "2", "pk": 9}) == "/3/test/v2/animals/9"


def _dispatch() -> Any:
    from django.urls import get_resolver

    from m3saas.modules.urls import ModuleDispatch

    (dispatch,) = get_resolver().url_patterns
    assert isinstance(dispatch, ModuleDispatch)
    return dispatch


def test_a_module_path_is_resolved_once_and_each_caller_gets_its_own_match(monkeypatch):
    from django.urls import get_resolver

    dispatch = _dispatch()
    dispatch._resolved.clear()
    mount = next(p for p in dispatch.url_patterns if getattr(p, "namespace", None) == "test_v1")
    asked: list[str] = []
    resolve = mount.resolve

    def asking(path: str) -> Any:
        asked.append(path)
        return resolve(path)

    monkeypatch.setattr(mount, "resolve", asking)
    first = dispatch.resolve("7/test/v1.4/animals/9")
    # What a caller does to its match (a middleware's process_view may change the view's
    # arguments) must not reach the next request of that path.
    first.kwargs["pk"] = "tampered"
    first.captured_kwargs["pk"] = "tampered"
    first.namespaces.append("tampered")
    first.app_names.append("tampered")
    first.tried.append(["tampered"])
    second = dispatch.resolve("7/test/v1.4/animals/9")
    assert len(asked) == 1  # the second came from memory
    assert second is not first
    path = "/7/test/v1.4/animals/9"
    ours, reference = get_resolver().resolve(path), _reference_resolver().resolve(path)
    for match in (second, ours):
        assert match.func is reference.func
        assert (match.args, match.kwargs, match.url_name) == (reference.args, reference.kwargs, reference.url_name)
        assert (match.namespaces, match.app_names) == (reference.namespaces, reference.app_names)
        for extra in ("captured_kwargs", "extra_kwargs"):
            assert getattr(match, extra) == getattr(reference, extra)
        assert match.view_name == reference.view_name == "test_v1:animal-detail"
    assert ours.route == reference.route
    assert second.kwargs == {"tenant_id": "7", "version": "1.4", "pk": 9}
    # Another tenant's path is the same match but for its id: remembered once for every tenant.
    other = dispatch.resolve("0812/test/v1.4/animals/9")
    assert len(asked) == 1 and len(dispatch._resolved) == 1
    reference = _reference_resolver().resolve("/0812/test/v1.4/animals/9")
    assert (other.func, other.args, other.kwargs) == (reference.func, reference.args, reference.kwargs)
    assert other.captured_kwargs == reference.captured_kwargs  # no other tenant's id in any argument
    assert other.kwargs["tenant_id"] == "0812" and second.kwargs["tenant_id"] == "7"
    # Not a tenant id for the mounts (20 digits, other digits than ASCII): never from memory.
    for path in ("12345678901234567890/test/v1.4/animals/9", "\u0667/test/v1.4/animals/9"):
        with pytest.raises(Resolver404):
            dispatch.resolve(path)


def test_remembered_module_paths_stay_bounded_and_failures_are_not_remembered(monkeypatch):
    from m3saas.modules import urls

    dispatch = _dispatch()
    dispatch._resolved.clear()
    monkeypatch.setattr(urls, "RESOLVED_MAX", 3)
    for pk in range(10):
        assert dispatch.resolve(f"1/test/v1/animals/{pk}").kwargs["pk"] == pk
        assert len(dispatch._resolved) <= 3
    dispatch._resolved.clear()
    for path in ("1/test/v1./animals", "1/test/v1/nothing", "1/test/v10/animals"):
        with pytest.raises(Resolver404):
            dispatch.resolve(path)
    assert dispatch._resolved == {}
    assert dispatch.resolve("health").url_name == "health"  # a platform path: resolved over the whole list
    assert dispatch._resolved == {}


def test_a_mount_with_a_pattern_ahead_that_may_match_a_tenant_path_is_resolved_every_time():
    """Only a `path()` route starting with a letter is sure never to match `<id>/…`: behind
    anything else, remembering `test/v1/animals` for every tenant id could hide that pattern."""
    from django.http import HttpResponse
    from django.urls import path, re_path

    from m3saas.modules.urls import ModuleDispatch, _never_a_tenant_path, module_urlpatterns

    def shadow(request: Any) -> HttpResponse:
        return HttpResponse()

    ahead = re_path(r"^5/test/v1/animals$", shadow, name="shadow")
    dispatch = ModuleDispatch("", [ahead, *module_urlpatterns()])
    assert dispatch.resolve("7/test/v1/animals").url_name == "animal-list"
    assert dispatch.resolve("5/test/v1/animals").url_name == "shadow"
    assert dispatch.resolve("7/test/v1/animals").url_name == "animal-list"
    assert dispatch._resolved == {}
    assert _never_a_tenant_path(path("bench/plain", shadow))
    assert not _never_a_tenant_path(path("<int:n>/x", shadow))
    assert not _never_a_tenant_path(path("", shadow))
    assert not _never_a_tenant_path(ahead)
    behind_a_letter = ModuleDispatch("", [path("health", shadow, name="health"), *module_urlpatterns()])
    assert behind_a_letter.resolve("7/test/v1/animals").kwargs["tenant_id"] == "7"
    assert list(behind_a_letter._resolved) == ["test/v1/animals"]
