"""The one API error shape: ``{"error": {"code", "message", "fields"}}``.

``code`` is stable and machine-readable, ``message`` is for people, ``fields`` maps input
field names to lists of messages (nested for nested input).
"""

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.http import Http404, JsonResponse
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from portal.errors import ApplicationError

_DEFAULT_CODES = {
    exceptions.NotAuthenticated: ("not_authenticated", "Authentication credentials were not provided."),
    exceptions.AuthenticationFailed: ("authentication_failed", None),
    exceptions.PermissionDenied: ("permission_denied", None),
    exceptions.NotFound: ("not_found", "Not found."),
    exceptions.MethodNotAllowed: ("method_not_allowed", None),
    exceptions.NotAcceptable: ("not_acceptable", None),
    exceptions.UnsupportedMediaType: ("unsupported_media_type", None),
    exceptions.ParseError: ("malformed_request", None),
    exceptions.Throttled: ("throttled", None),
}

_DRF_GENERIC_CODES = {
    "error",
    "not_authenticated",
    "authentication_failed",
    "permission_denied",
    "not_found",
    "method_not_allowed",
    "not_acceptable",
    "unsupported_media_type",
    "parse_error",
    "throttled",
}


def error_body(code: str, message: str, fields: dict | None = None) -> dict:
    return {"error": {"code": code, "message": message, "fields": fields or {}}}


def _flatten(detail):
    if isinstance(detail, dict):
        return {str(k): _flatten(v) for k, v in detail.items()}
    if isinstance(detail, list):
        if all(not isinstance(i, (dict, list)) for i in detail):
            return [str(i) for i in detail]
        return [_flatten(i) for i in detail]
    return [str(detail)]


def _leaves(codes):
    if isinstance(codes, dict):
        for value in codes.values():
            yield from _leaves(value)
    elif isinstance(codes, list):
        for value in codes:
            yield from _leaves(value)
    else:
        yield str(codes)


def api_exception_handler(exc, context):
    if isinstance(exc, ApplicationError):
        return Response(error_body(exc.code, exc.message, exc.fields), status=exc.status_code)
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied()

    response = drf_exception_handler(exc, context)
    if response is None:
        return None  # a real bug: let Django's 500 handling log it

    if isinstance(exc, exceptions.ValidationError):
        detail = exc.detail if isinstance(exc.detail, dict) else {"non_field_errors": exc.detail}
        # Field-level problems are "invalid" (details per field); input with fields we do not
        # know is "unknown_field", so clients can tell a typo from a bad value.
        code = "unknown_field" if set(_leaves(exc.get_codes())) == {"unknown_field"} else "invalid"
        response.data = error_body(code, "Invalid input.", _flatten(detail))
        return response

    code, message = "error", None
    for klass, (default_code, default_message) in _DEFAULT_CODES.items():
        if isinstance(exc, klass):
            code, message = default_code, default_message
            break
    own_code = getattr(exc, "error_code", None) or exc.get_codes()
    if isinstance(own_code, str) and own_code not in _DRF_GENERIC_CODES:
        code = own_code
    text = str(exc.detail) if not isinstance(exc.detail, (dict, list)) else (message or "Error.")
    response.data = error_body(code, text or message or "Error.")
    if isinstance(exc, exceptions.Throttled) and exc.wait is not None:
        response["Retry-After"] = str(max(1, int(exc.wait + 0.999)))
    return response


def json_404(request, exception=None):
    """Unmatched URLs under /api/ answer in the API's error shape."""
    return JsonResponse(error_body("not_found", "No such API endpoint."), status=status.HTTP_404_NOT_FOUND)
