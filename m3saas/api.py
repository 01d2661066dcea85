"""One JSON error shape for every error: `{"error": {"code", "message"}}` (+ `errors` per field).

Errors reach a client by three roads, and each gives the same shape:

- DRF views: `exception_handler` (application errors, validation, parse errors, 405, …);
- middleware and plain views: `error_response`, and Django's `handler404/400/500` below;
- whatever Django itself renders (its technical pages under `DEBUG`, empty 405s): reshaped
  on the way out by `ApiErrorMiddleware`, which also refuses oversized bodies with a 413.

Hostile input is a client error, logged as a warning: JSON nested deeper than `MAX_JSON_DEPTH`
(`m3saas.parsers.JSONParser`), more query parameters or form fields than `DATA_UPLOAD_MAX_NUMBER_FIELDS`,
more files than `DATA_UPLOAD_MAX_NUMBER_FILES` (400) and bodies past the size limit (413).

An unexpected exception gets an error id, logged with the traceback and returned in the body;
a database server that cannot be reached is a 503 rather than a 500.
"""

from __future__ import annotations

import json
import logging
import sys
import uuid
from collections.abc import Callable
from typing import Any, TypeVar

from django.conf import settings
from django.core.exceptions import RequestDataTooBig, SuspiciousOperation, TooManyFieldsSent, TooManyFilesSent
from django.core.signals import got_request_exception
from django.db import InterfaceError, OperationalError, ProgrammingError
from django.dispatch import receiver
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from rest_framework import exceptions as drf_exceptions
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from m3saas.engines import engines
from m3saas.exceptions import (
    ApplicationError,
    NotFoundError,
    ServiceUnavailableError,
    TenantMovingError,
    TenantRouteNotFoundError,
)

logger = logging.getLogger(__name__)
R = TypeVar("R", bound=HttpResponse)

_STATUS_CODES = {
    400: "bad_request",
    401: "not_authenticated",
    403: "permission_denied",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    413: "request_too_large",
    415: "unsupported_media_type",
    429: "throttled",
    500: "server_error",
    503: "service_unavailable",
}


class DatabaseUnavailableError(ServiceUnavailableError):
    code = "database_unavailable"
    default_message = "The database is unavailable; try again shortly."
    retry_after = 5


class RequestTooLargeError(ApplicationError):
    status_code = 413
    code = "request_too_large"
    default_message = "The request body is too large."


class TooManyFieldsError(ApplicationError):
    code = "too_many_fields"
    default_message = "The request has too many query parameters or form fields."


class TooManyFilesError(ApplicationError):
    code = "too_many_files"
    default_message = "The request has too many files."


def _refusal(exc: SuspiciousOperation) -> ApplicationError:
    """The client error for a request Django refuses as suspicious (too big, too many fields, …)."""
    if isinstance(exc, RequestDataTooBig):
        return RequestTooLargeError()
    if isinstance(exc, TooManyFieldsSent):
        return TooManyFieldsError()
    if isinstance(exc, TooManyFilesSent):
        return TooManyFilesError()
    return ApplicationError()


def _log_refusal(request: HttpRequest | None, exc: SuspiciousOperation) -> None:
    # Django's own security logger, at warning level: the client erred, the server did not.
    logging.getLogger(f"django.security.{type(exc).__name__}").warning(
        "refused %s %s: %s",
        request.method if request is not None else "-",
        request.path if request is not None else "-",
        exc,
    )


def error_body(code: str, message: str, errors: Any = None, *, error_id: str | None = None) -> dict[str, Any]:
    error: dict[str, Any] = {"code": code, "message": message}
    if error_id is not None:
        error["id"] = error_id
    body: dict[str, Any] = {"error": error}
    if errors is not None:
        body["errors"] = errors
    return body


def error_response(exc: ApplicationError) -> JsonResponse:
    """The response for an `ApplicationError` raised outside DRF (middleware, plain views).

    A refused tenant route is answered like any unknown route; what it was is logged.
    """
    if isinstance(exc, TenantRouteNotFoundError):
        logger.info("tenant route refused (%s): %s", exc.code, exc.message)
        exc = NotFoundError()
    return _retry_after(JsonResponse(error_body(exc.code, exc.message), status=exc.status_code), exc)


def _retry_after(response: R, exc: Exception) -> R:
    """Tell the client when to try again, where the error says (a 429's window, a moving tenant)."""
    retry_after = getattr(exc, "retry_after", None)
    if isinstance(retry_after, int):
        response["Retry-After"] = str(retry_after)
    return response


def _unavailable(status: int) -> Exception:
    """What a 5xx of an unexpected error says about retrying: a 503 (a database that cannot be
    reached, e.g. a session a tenant's move ended mid-request) may be retried shortly."""
    return DatabaseUnavailableError() if status == 503 else _UnknownError()


def _write_refused(exc: BaseException) -> TenantMovingError | None:
    """A write the tenant's database refused because its account was frozen for a move (or retired
    after one): a 503 to retry, not a 500. The request read the tenant before its move began."""
    if not isinstance(exc, (OperationalError, ProgrammingError)):
        return None
    cause = exc.__cause__ or exc
    if not any(adapter.is_write_refused(cause) for adapter in engines()):
        return None
    logger.warning("a tenant database refused a write during a move (%s): answered 503", exc)
    return TenantMovingError()


def is_database_unavailable(exc: BaseException) -> bool:
    """Whether `exc` says the database server cannot be reached (as opposed to a bad query)."""
    if isinstance(exc, InterfaceError):
        return True
    if not isinstance(exc, OperationalError):
        return False
    cause = exc.__cause__ or exc
    # The driver's error says which vendor raised it: every adapter is asked, not only the configured one.
    return any(adapter.is_unavailable(cause) for adapter in engines())


def _new_error_id() -> str:
    return uuid.uuid4().hex[:12]


def _log_unexpected(request: HttpRequest | None, exc: BaseException) -> tuple[str, int]:
    """Log `exc` once under a new error id; return the id and the status to answer with."""
    error_id = _new_error_id()
    method = request.method if request is not None else "-"
    path = request.path if request is not None else "-"
    exc_info = (type(exc), exc, exc.__traceback__)
    if is_database_unavailable(exc):
        logger.error(
            "database unavailable (error id %s) on %s %s: %s",
            error_id,
            method,
            path,
            exc,
            extra={"error_id": error_id},
        )
        status = 503
    else:
        logger.error(
            "unhandled error (error id %s) on %s %s",
            error_id,
            method,
            path,
            exc_info=exc_info,
            extra={"error_id": error_id},
        )
        status = 500
    if request is not None:
        request.m3saas_error = (error_id, status)  # type: ignore[attr-defined]
    return error_id, status


def _unexpected_body(error_id: str, status: int) -> dict[str, Any]:
    if status == 503:
        exc = DatabaseUnavailableError()
        return error_body(exc.code, f"{exc.message} (error id {error_id})", error_id=error_id)
    return error_body("server_error", f"An unexpected error occurred (error id {error_id}).", error_id=error_id)


@receiver(got_request_exception, dispatch_uid="m3saas.api.log_request_exception")
def _on_request_exception(sender: Any, request: HttpRequest | None = None, **kwargs: Any) -> None:
    """Give an exception that escaped a view or a middleware its error id, and log it."""
    exc = sys.exc_info()[1]
    if exc is None or (request is not None and hasattr(request, "m3saas_error")):
        return
    _log_unexpected(request, exc)


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """DRF's handler, reshaped: application errors, validation errors and the rest alike."""
    if isinstance(exc, SuspiciousOperation):
        request = context.get("request")
        _log_refusal(getattr(request, "_request", request), exc)
        exc = _refusal(exc)
    exc = _write_refused(exc) or exc
    if isinstance(exc, ApplicationError):
        return _retry_after(Response(error_body(exc.code, exc.message), status=exc.status_code), exc)
    if isinstance(exc, Http404):
        exc = drf_exceptions.NotFound()
    response = drf_exception_handler(exc, context)
    if response is None:
        request = context.get("request")
        django_request = getattr(request, "_request", request)
        error_id, status = _log_unexpected(django_request, exc)
        response = _retry_after(Response(_unexpected_body(error_id, status), status=status), _unavailable(status))
        # Logged above with its traceback; `django.request` need not log it again.
        response._has_been_logged = True  # type: ignore[attr-defined]
        return response
    if isinstance(exc, drf_exceptions.ValidationError):
        errors = exc.detail if isinstance(exc.detail, dict) else {"non_field_errors": exc.detail}
        response.data = error_body("invalid", "The request data is invalid.", errors)
    elif isinstance(exc, drf_exceptions.APIException):
        detail = exc.detail
        message = "The request cannot be served." if isinstance(detail, (dict, list)) else str(detail)
        response.data = error_body(str(exc.default_code), message)
    return response


def not_found_view(request: HttpRequest, exception: Exception | None = None) -> JsonResponse:
    return error_response(NotFoundError())


def bad_request_view(request: HttpRequest, exception: Exception | None = None) -> JsonResponse:
    if isinstance(exception, RequestDataTooBig):
        return error_response(RequestTooLargeError())
    return JsonResponse(error_body("bad_request", "The request cannot be served."), status=400)


def permission_denied_view(request: HttpRequest, exception: Exception | None = None) -> JsonResponse:
    return JsonResponse(error_body("permission_denied", "You may not do this."), status=403)


def server_error_view(request: HttpRequest) -> HttpResponse:
    refused = _write_refused(sys.exc_info()[1] or _UnknownError())
    if refused is not None:
        return error_response(refused)
    error_id, status = getattr(request, "m3saas_error", None) or _log_unexpected(request, _UnknownError())
    response = _retry_after(JsonResponse(_unexpected_body(error_id, status), status=status), _unavailable(status))
    # The exception was logged with its id and traceback when it was raised.
    response._has_been_logged = True  # type: ignore[attr-defined]
    return response


class _UnknownError(Exception):
    """Stands in for an exception Django rendered without telling us (no signal was sent)."""


def max_request_body_size() -> int:
    return int(settings.MAX_REQUEST_BODY_SIZE)


def _is_json(response: HttpResponse) -> bool:
    return str(response.get("Content-Type", "")).startswith("application/json")


class ApiErrorMiddleware:
    """Refuse oversized bodies (413) and turn any non-JSON error of an API path into the JSON shape.

    Place it right after the security and static-file middleware: it must see the responses
    Django renders itself (technical 404/500 pages under `DEBUG`, empty 405s, 400s).
    The admin keeps its HTML pages.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if self._body_too_large(request):
            limit = max_request_body_size()
            return error_response(RequestTooLargeError(f"The request body is larger than {limit} bytes."))
        try:
            request.GET  # noqa: B018 - parsed (and kept) here, so too many parameters are a 400 on every path
        except TooManyFieldsSent as exc:
            _log_refusal(request, exc)
            return error_response(_refusal(exc))
        response = self.get_response(request)
        if response.status_code >= 400 and not _is_json(response) and self._is_api_path(request.path_info):
            return self._as_json(request, response)
        return response

    @staticmethod
    def _body_too_large(request: HttpRequest) -> bool:
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            return False
        return length > max_request_body_size()

    @staticmethod
    def _is_api_path(path: str) -> bool:
        from django.conf import settings

        prefix = f"/{settings.M3SAAS_CONFIG.sub_directory}/" if settings.M3SAAS_CONFIG.sub_directory else "/"
        static = "/" + str(settings.STATIC_URL).lstrip("/")
        return not (path.startswith(f"{prefix}admin/") or path.startswith(static))

    @staticmethod
    def _as_json(request: HttpRequest, response: HttpResponse) -> HttpResponse:
        status = response.status_code
        error = getattr(request, "m3saas_error", None)
        if status >= 500 and error is not None:
            # Under DEBUG Django rendered its traceback page: never show it on an API path.
            error_id, status = error
            body = _unexpected_body(error_id, status)
        elif status == 404:
            body = error_body(NotFoundError.code, NotFoundError.default_message)
        elif status == 405:
            body = error_body("method_not_allowed", f'Method "{request.method}" not allowed.')
        else:
            body = error_body(_STATUS_CODES.get(status, "error"), response.reason_phrase or "Error.")
        reshaped = HttpResponse(json.dumps(body), status=status, content_type="application/json")
        for header in ("Allow", "Retry-After", "WWW-Authenticate"):
            if header in response:
                reshaped[header] = response[header]
        reshaped._has_been_logged = getattr(response, "_has_been_logged", False)  # type: ignore[attr-defined]
        return reshaped
