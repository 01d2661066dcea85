"""The project's URLs plus a one-time login link, for the browser test only (never in production
settings): headless Chromium's `--screenshot` cannot fill a form, so the test hands it a link that
opens a staff session the way the login form would."""

from __future__ import annotations

from django.contrib.auth import get_user_model, login
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.urls import URLPattern, URLResolver, path
from django.utils.http import url_has_allowed_host_and_scheme

from m3saas.urls import urlpatterns as project_patterns

# token → user id; each token opens one session.
LOGIN_TOKENS: dict[str, int] = {}


def login_link_view(request: HttpRequest, token: str) -> HttpResponse:
    user_id = LOGIN_TOKENS.pop(token, None)
    target = request.GET.get("next", "/admin/")
    if user_id is None or not url_has_allowed_host_and_scheme(target, allowed_hosts=None):
        raise Http404
    login(request, get_user_model().objects.get(pk=user_id), backend="django.contrib.auth.backends.ModelBackend")
    return redirect(target)


urlpatterns: list[URLPattern | URLResolver] = [
    path("test-login/<str:token>/", login_link_view),
    *project_patterns,
]
