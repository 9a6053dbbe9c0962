"""One error shape for every 4xx and 5xx the gateway answers.

``{"error": "<code>", "detail": "<message for a person>", "fields": {...}}``: ``error`` is a stable machine code,
``detail`` says what went wrong in words, ``fields`` (only for invalid input) maps each bad field to its messages.
Services raise ``DomainError`` (or any ``mns_client`` error, which carries a ``code``); this module turns them,
DRF's own exceptions and Django's 400/403/404/500 into that shape.
"""

import logging
from typing import Any

from django.core.exceptions import PermissionDenied, RequestDataTooBig, SuspiciousOperation
from django.http import Http404, JsonResponse
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import set_rollback

from mns_client.protocol.errors import MNSError

logger = logging.getLogger(__name__)


class DomainError(MNSError):
    """A refusal a service makes on purpose: a stable code, a message for a person, an HTTP status."""

    def __init__(self, code: str, detail: str, *, status: int = 400, fields: dict[str, list[str]] | None = None):
        super().__init__(detail)
        self.code = code
        self.detail = detail
        self.status = status
        self.fields = fields or {}


# Codes raised by the shared core (which knows nothing of HTTP) that are not plain bad input.
STATUS_BY_CODE = {
    "name_taken": status.HTTP_409_CONFLICT,
    "name_confusable": status.HTTP_409_CONFLICT,
    "not_found": status.HTTP_404_NOT_FOUND,
    # A registration (POST /api/v1/mailboxes) of a name nobody may register.
    "name_reserved": status.HTTP_409_CONFLICT,
}

_DRF_CODES = {
    exceptions.ParseError: "malformed_request",
    exceptions.AuthenticationFailed: "authentication_failed",
    exceptions.NotAuthenticated: "not_authenticated",
    exceptions.PermissionDenied: "permission_denied",
    exceptions.NotFound: "not_found",
    exceptions.MethodNotAllowed: "method_not_allowed",
    exceptions.NotAcceptable: "not_acceptable",
    exceptions.UnsupportedMediaType: "unsupported_media_type",
    exceptions.Throttled: "throttled",
}


def error_body(code: str, detail: str, fields: dict[str, Any] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"error": code, "detail": detail}
    if fields:
        body["fields"] = fields
    return body


def _flatten(detail: Any) -> Any:
    """DRF's nested ErrorDetail structures as plain strings, lists and dicts."""
    if isinstance(detail, dict):
        return {key: _flatten(value) for key, value in detail.items()}
    if isinstance(detail, list):
        return [_flatten(item) for item in detail]
    return str(detail)


def _from_api_exception(exc: exceptions.APIException) -> tuple[int, dict[str, Any], dict[str, str]]:
    headers: dict[str, str] = {}
    if getattr(exc, "auth_header", None):
        headers["WWW-Authenticate"] = exc.auth_header
    if isinstance(exc, exceptions.Throttled) and exc.wait is not None:
        headers["Retry-After"] = str(int(exc.wait) + 1)
        detail = f"Too many requests; try again in {int(exc.wait) + 1} seconds."
        return exc.status_code, error_body("throttled", detail), headers
    if isinstance(exc, exceptions.ValidationError):
        fields = _flatten(exc.detail)
        if not isinstance(fields, dict):
            fields = {"non_field_errors": fields}
        return exc.status_code, error_body("invalid", "The request has invalid fields.", fields), headers
    code = next((c for cls, c in _DRF_CODES.items() if isinstance(exc, cls)), None) or str(exc.default_code)
    return exc.status_code, error_body(code, str(exc.detail)), headers


def throttled_answer(wait: float | None) -> tuple[int, dict[str, Any], dict[str, str]]:
    """The status, body and headers of a request refused by its rate limits (DRF's ``Throttled``, as
    ``api_exception_handler`` answers it), for an answer made before DRF (``core.fastpath``)."""
    return _from_api_exception(exceptions.Throttled(wait))


def api_exception_handler(exc: Exception, context: dict[str, Any]) -> Response:
    """DRF's EXCEPTION_HANDLER: every exception a view raises becomes the one error shape."""
    headers: dict[str, str] = {}
    if isinstance(exc, DomainError):
        code, body = exc.status, error_body(exc.code, exc.detail, exc.fields)
        if code == 401:  # RFC 9110: a 401 names the scheme that would work
            headers["WWW-Authenticate"] = "MNS-Session"
    elif isinstance(exc, MNSError):
        code, body = STATUS_BY_CODE.get(exc.code, 400), error_body(exc.code, str(exc))
    elif isinstance(exc, RequestDataTooBig):
        code, body = 413, error_body("request_too_large", "The request body is larger than this endpoint accepts.")
    elif isinstance(exc, Http404):
        code, body = 404, error_body("not_found", "Not found.")
    elif isinstance(exc, PermissionDenied):
        code, body = 403, error_body("permission_denied", "You do not have permission to do this.")
    elif isinstance(exc, exceptions.APIException):
        code, body, headers = _from_api_exception(exc)
    else:
        logger.exception("unhandled error in %s", context.get("view").__class__.__name__)
        code, body = 500, error_body("server_error", "The gateway failed to handle this request.")
    set_rollback()
    return Response(body, status=code, headers=headers)


def json_error(code: str, detail: str, status: int, **extra: Any) -> JsonResponse:
    return JsonResponse({**error_body(code, detail), **extra}, status=status)


def overloaded() -> JsonResponse:
    """The 503 of a request refused for load, by the admission queue (``core.admission``) or the queue-time
    shedding (``core.middleware``): the same answer from both."""
    response = json_error("overloaded", "The gateway is busy; try again in a moment (see Retry-After).", 503)
    response["Retry-After"] = "1"
    # Answered before the security middleware runs: the headers that matter for a JSON error, set here.
    response["Cache-Control"] = "no-store"
    response["X-Content-Type-Options"] = "nosniff"
    return response


def handler400(request: Any, exception: Exception | None = None) -> JsonResponse:
    if isinstance(exception, RequestDataTooBig):
        return json_error("request_too_large", "The request body is larger than this endpoint accepts.", 413)
    if isinstance(exception, SuspiciousOperation):
        return json_error("bad_request", "The request was refused as malformed or unsafe.", 400)
    return json_error("bad_request", "The request is malformed.", 400)


def handler403(request: Any, exception: Exception | None = None) -> JsonResponse:
    return json_error("permission_denied", "You do not have permission to do this.", 403)


def handler404(request: Any, exception: Exception | None = None) -> JsonResponse:
    return json_error("not_found", "Nothing is here.", 404)


def handler500(request: Any) -> JsonResponse:
    return json_error("server_error", "The gateway failed to handle this request.", 500)
