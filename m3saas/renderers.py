"""The browsable API, for operators: staff sessions (or anyone while `DEBUG` is on) get HTML in a
browser; every other caller gets JSON, whatever its `Accept` header asks for.

The renderer is chosen by content negotiation, so a browser (`Accept: text/html,…,*/*`) sees the
browsable API only when `browsable_api_allowed`; otherwise JSON matches its `*/*`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.conf import settings
from django.http import HttpRequest
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.renderers import BaseRenderer, BrowsableAPIRenderer
from rest_framework.request import Request

from m3saas.access import ACCESS_PUBLIC, module_api_access, request_is_staff_session, view_is_public


def browsable_api_allowed(request: HttpRequest | Request) -> bool:
    return bool(settings.DEBUG) or request_is_staff_session(request)


def _reached_by_staff_session(request: Request, view: Any) -> bool:
    """A module API (`request.tenant` set) reached without a key where one is needed: a staff session."""
    return (
        getattr(request, "tenant", None) is not None
        and getattr(request, "api_key", None) is None
        and module_api_access() != ACCESS_PUBLIC
        and not view_is_public(type(view))
    )


class OperatorBrowsableAPIRenderer(BrowsableAPIRenderer):
    """DRF's browsable API without the write forms a staff session could not submit (it only reads)."""

    def show_form_for_method(self, view: Any, method: str, request: Request, obj: Any) -> bool:
        if _reached_by_staff_session(request, view):
            return False
        return bool(super().show_form_for_method(view, method, request, obj))


class OperatorContentNegotiation(DefaultContentNegotiation):
    """Offers the browsable API only where `browsable_api_allowed`."""

    def select_renderer(
        self, request: Request, renderers: Iterable[BaseRenderer], format_suffix: str | None = None
    ) -> tuple[BaseRenderer, str]:
        if not browsable_api_allowed(request):
            renderers = [r for r in renderers if not isinstance(r, BrowsableAPIRenderer)]
        selected: tuple[BaseRenderer, str] = super().select_renderer(request, renderers, format_suffix)
        return selected
