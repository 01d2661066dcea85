"""One JSON error shape for every error: `{"error": {"code", "message"}}` (+ `errors` per field)."""

from __future__ import annotations

import logging
import uuid
from typing import Any

from django.http import Http404, HttpRequest, JsonResponse
from rest_framework import exceptions as drf_exceptions
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from m3saas.exceptions import ApplicationError

logger = logging.getLogger(__name__)


def error_body(code: str, message: str, errors: Any = None) -> dict[str, Any]:
    body: dict[str, Any] = {"error": {"code": code, "message": message}}
    if errors is not None:
        body["errors"] = errors
    return body


def error_response(exc: ApplicationError) -> JsonResponse:
    """The response for an `ApplicationError` raised outside DRF (middleware, plain views)."""
    return JsonResponse(error_body(exc.code, exc.message), status=exc.status_code)


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """DRF's handler, reshaped: application errors, validation errors and the rest alike."""
    if isinstance(exc, ApplicationError):
        return Response(error_body(exc.code, exc.message), status=exc.status_code)
    if isinstance(exc, Http404):
        exc = drf_exceptions.NotFound()
    response = drf_exception_handler(exc, context)
    if response is None:
        error_id = uuid.uuid4().hex[:12]
        logger.exception("unhandled error %s", error_id)
        return Response(error_body("server_error", f"An unexpected error occurred (error id {error_id})."), status=500)
    if isinstance(exc, drf_exceptions.ValidationError):
        errors = exc.detail if isinstance(exc.detail, dict) else {"non_field_errors": exc.detail}
        response.data = error_body("invalid", "The request data is invalid.", errors)
    elif isinstance(exc, drf_exceptions.APIException):
        detail = exc.detail
        message = "The request cannot be served." if isinstance(detail, (dict, list)) else str(detail)
        response.data = error_body(str(exc.default_code), message)
    return response


def not_found_view(request: HttpRequest, exception: Exception | None = None) -> JsonResponse:
    return JsonResponse(error_body("not_found", f"No route for {request.path}."), status=404)


def server_error_view(request: HttpRequest) -> JsonResponse:
    return JsonResponse(error_body("server_error", "An unexpected error occurred."), status=500)
