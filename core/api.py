"""API plumbing shared by every app: the one error shape, strict input serializers, strict paging."""

from __future__ import annotations

import logging
import math
import re
from typing import Any

from django.conf import settings
from django.core.exceptions import ObjectDoesNotExist
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.validators import RegexValidator
from django.http import Http404, JsonResponse
from django.views import defaults
from rest_framework import exceptions, pagination, permissions, serializers
from rest_framework.response import Response

from core.errors import DomainError

logger = logging.getLogger(__name__)

_DRF_CODES = {
    exceptions.ValidationError: "invalid_input",
    exceptions.ParseError: "malformed_request",
    exceptions.NotAuthenticated: "not_authenticated",
    exceptions.AuthenticationFailed: "authentication_failed",
    exceptions.PermissionDenied: "permission_denied",
    exceptions.NotFound: "not_found",
    exceptions.MethodNotAllowed: "method_not_allowed",
    exceptions.NotAcceptable: "not_acceptable",
    exceptions.UnsupportedMediaType: "unsupported_media_type",
    exceptions.Throttled: "throttled",
}


def error_body(code: str, message: str, details: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "details": details or {}}}


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response:
    if isinstance(exc, DomainError):
        return Response(error_body(exc.code, exc.message, exc.details), status=exc.http_status)
    if isinstance(exc, Http404 | ObjectDoesNotExist):
        exc = exceptions.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied()
    if isinstance(exc, exceptions.APIException):
        code = next((c for cls, c in _DRF_CODES.items() if isinstance(exc, cls)), "error")
        if isinstance(exc, exceptions.ValidationError):
            details = exc.detail if isinstance(exc.detail, dict) else {"non_field_errors": exc.detail}
            response = Response(error_body(code, "The input is not valid.", details), status=exc.status_code)
        else:
            response = Response(error_body(code, str(exc.detail)), status=exc.status_code)
        auth_header = getattr(exc, "auth_header", None)
        if auth_header:
            response["WWW-Authenticate"] = auth_header
        if isinstance(exc, exceptions.Throttled):
            wait = max(1, math.ceil(exc.wait or 1))  # whole seconds, never 0: "try again now" would loop
            response["Retry-After"] = str(wait)
            scope = getattr(context.get("view"), "throttle_scope", None)
            response.data = error_body(
                code, f"Too many requests; try again in {wait} seconds.", {"retry_after": wait, "scope": scope}
            )
        return response
    logger.exception("unhandled error in %s", context.get("view").__class__.__name__)
    return Response(error_body("internal_error", "An internal error occurred."), status=500)


def json_not_found(request, exception=None):
    """404 in the error shape under /api/, Django's page elsewhere."""
    if request.path.startswith("/api/"):
        return JsonResponse(error_body("not_found", "Not found."), status=404)
    return defaults.page_not_found(request, exception)


def json_server_error(request):
    if request.path.startswith("/api/"):
        return JsonResponse(error_body("internal_error", "An internal error occurred."), status=500)
    return defaults.server_error(request)


_JSON_TYPES: list[tuple[type, tuple[type, ...], str]] = [  # field class, accepted JSON values, name
    (serializers.BooleanField, (bool,), "a boolean"),
    (serializers.IntegerField, (int,), "an integer"),
    (serializers.FloatField, (int, float), "a number"),
    (serializers.ChoiceField, (str,), "a string"),
    (serializers.CharField, (str,), "a string"),
    (serializers.DictField, (dict,), "an object"),
    (serializers.ListField, (list,), "an array"),
]
_QUERY_INTEGER = re.compile(r"-?[0-9]+")
ORDER_NO_FORMAT = r"^[A-Za-z0-9_-]+$"  # order, payment and refund numbers (orders.services.order_no_new)


def _json_type_error(field: serializers.Field, value: Any) -> str | None:
    for field_class, accepted, name in _JSON_TYPES:
        if isinstance(field, field_class):
            wrong = not isinstance(value, accepted) or (bool not in accepted and isinstance(value, bool))
            return f"Must be {name}." if wrong else None
    return None


class StrictSerializer(serializers.Serializer):
    """Input serializer for a JSON body, exactly as the OpenAPI document describes it.

    Refuses fields it does not know (typos must not pass silently) and values of another JSON
    type than the field's: ``"12"`` or ``12.0`` for an integer, ``0`` for a string, ``true`` for
    a number. DRF alone would coerce them.
    """

    def to_internal_value(self, data):
        if not isinstance(data, dict):
            raise serializers.ValidationError({"non_field_errors": ["Expected a JSON object."]})
        errors = {name: ["Unknown field."] for name in sorted(set(data) - set(self.fields))}
        for name, field in self.fields.items():
            if name in data and data[name] is not None and (problem := self._type_error(field, data[name])):
                errors[name] = [problem]
        if errors:
            raise serializers.ValidationError(errors)
        return super().to_internal_value(data)

    def _type_error(self, field: serializers.Field, value: Any) -> str | None:
        return _json_type_error(field, value)


class PatternField(serializers.RegexField):
    """A string that matches ``regex`` as a whole: Django's validator searches, and its ``$`` also
    matches before a final newline, so ``"AB\\n"`` would pass ``^[A-Z]+$`` (the OpenAPI document's
    pattern, ECMA-style, would not)."""

    def __init__(self, regex: str, **kwargs: Any) -> None:
        kwargs.setdefault("trim_whitespace", False)
        super().__init__(regex, **kwargs)
        whole = re.compile(regex.removeprefix("^").removesuffix("$"))
        self.validators = [v for v in self.validators if not isinstance(v, RegexValidator)]
        self.validators.append(RegexValidator(rf"\A(?:{whole.pattern})\Z", message=f"Must match {regex}."))


class StrictQuerySerializer(StrictSerializer):
    """Input serializer for query parameters: every value is a string; integers are plain digits
    (``int()`` alone would take ``" 1"``, ``"1_0"`` or an Arabic-Indic digit). Other parameters
    are ignored, as HTTP caches and proxies add their own."""

    def to_internal_value(self, data):
        if isinstance(data, dict):
            data = {name: value for name, value in data.items() if name in self.fields}
        return super().to_internal_value(data)

    def _type_error(self, field: serializers.Field, value: Any) -> str | None:
        if isinstance(field, serializers.IntegerField) and not _QUERY_INTEGER.fullmatch(str(value)):
            return "Must be an integer."
        return None


class StrictLimitOffsetPagination(pagination.LimitOffsetPagination):
    """``?limit=&offset=``, refused with 400 when not whole numbers in range (DRF's own silently
    falls back to the defaults, so a client's typo would page wrongly without a word)."""

    max_limit = 200

    def get_limit(self, request) -> int:
        return self._read(
            request, self.limit_query_param, minimum=1, maximum=self.max_limit, default=self.default_limit
        )

    def get_offset(self, request) -> int:
        return self._read(request, self.offset_query_param, minimum=0, maximum=None, default=0)

    @staticmethod
    def _read(request, name: str, *, minimum: int, maximum: int | None, default: int) -> int:
        raw = request.query_params.get(name)
        if raw is None:
            return default
        if not _QUERY_INTEGER.fullmatch(raw) or int(raw) < minimum or (maximum is not None and int(raw) > maximum):
            bound = f" and at most {maximum}" if maximum is not None else ""
            raise exceptions.ValidationError({name: [f"Must be a whole number of at least {minimum}{bound}."]})
        return int(raw)

    def get_schema_operation_parameters(self, view) -> list[dict[str, Any]]:
        limit, offset = super().get_schema_operation_parameters(view)
        limit["schema"] |= {"minimum": 1, "maximum": self.max_limit}
        offset["schema"] |= {"minimum": 0}
        return [limit, offset]


class ApiDocsPermission(permissions.BasePermission):
    """``/api/schema/`` and ``/api/docs/``: anyone when ``API_DOCS_PUBLIC`` (development), staff otherwise
    (the production default). Read at request time, not at import."""

    message = "The API documentation is for staff."

    def has_permission(self, request, view) -> bool:
        return settings.API_DOCS_PUBLIC or bool(request.user and request.user.is_staff)
