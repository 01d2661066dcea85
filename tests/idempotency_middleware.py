"""Middleware that stands in, in tests, for a worker dying or a request taking its time."""

from __future__ import annotations

import threading
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse


class SimulatedCrash(Exception):
    """What the worker "dies" of."""


class CrashAfterCommitMiddleware:
    """Outside the idempotency middleware: the request committed, but its client gets no answer."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        self.get_response(request)
        raise SimulatedCrash("the worker died after the commit")


class FailAfterViewMiddleware:
    """Inside the idempotency middleware: the view wrote its rows, then the request failed (500)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        self.get_response(request)
        raise SimulatedCrash("the request failed after the view wrote")


class HoldFirstWriteMiddleware:
    """Inside the idempotency middleware: the first write waits for `release` before its view runs."""

    entered = threading.Event()
    release = threading.Event()

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.method != "GET" and not HoldFirstWriteMiddleware.entered.is_set():
            HoldFirstWriteMiddleware.entered.set()
            HoldFirstWriteMiddleware.release.wait(timeout=30)
        return self.get_response(request)

    @classmethod
    def reset(cls) -> None:
        cls.entered = threading.Event()
        cls.release = threading.Event()
