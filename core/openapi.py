"""The API contract (drf-spectacular): the one error shape, the errors each operation answers, and
a post-processing hook that makes the generated document exact.

Views describe themselves with ``@extend_schema(request=..., responses={200: Out, **errors(...)})``.
``errors(400, 404, ...)`` gives the error answers in the one shape,
``{"error": {"code", "message", "details"}}``, with the codes each status carries. The hook
closes every object (``additionalProperties: false``: our input serializers refuse unknown
fields, and our answers carry no undocumented ones) and adds the operations that are plain Django
views (``web/openapi.py``, the top floor, runs first). ``config/tests/test_openapi_fuzz.py`` holds the
API to it.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse
from rest_framework import serializers


class ErrorInfo(serializers.Serializer):
    code = serializers.CharField(help_text="Stable and machine-readable: branch on it (e.g. `order_not_payable`).")
    message = serializers.CharField(help_text="For people; the wording may change.")
    details = serializers.DictField(
        help_text="`invalid_input`: a list of messages per wrong field. Otherwise context, e.g. the current status."
    )


class ErrorBody(serializers.Serializer):
    """Every 4xx and 5xx answer of the API."""

    error = ErrorInfo()


GENERIC_CODES = {
    400: "`invalid_input` (details name each wrong field, with messages) or `malformed_request` (not JSON)",
    401: "`not_authenticated` (no credentials) or `authentication_failed` (wrong or expired)",
    402: "`insufficient_balance`",
    403: "`permission_denied`",
    404: "`not_found`",
    409: "the current state does not allow it",
    415: "`unsupported_media_type`: send `application/json`",
    429: "`throttled`: too many requests; wait `Retry-After` seconds (details: `retry_after`, `scope`)",
    502: "`gateway_unavailable`: the gateway did not answer, or not verifiably; retry later",
    503: "`channel_not_configured`: this payment channel has no credentials here",
}

RETRY_AFTER = OpenApiParameter(
    "Retry-After",
    OpenApiTypes.INT,
    OpenApiParameter.HEADER,
    response=[429],
    required=True,
    description="Seconds to wait before trying again (at least 1).",
)


def errors(*statuses: int, **codes: str) -> dict[int, OpenApiResponse]:
    """Error answers in the one shape: ``errors(400, 404, c409="`order_not_payable`...")``; a ``c<status>``
    describes (and adds) that status's codes, the others get the generic description."""
    answers = {}
    for status in sorted({*statuses, *(int(name[1:]) for name in codes)}):
        what = codes.get(f"c{status}") or GENERIC_CODES[status]
        answers[status] = OpenApiResponse(ErrorBody, description=f"Error: {what}.")
    return answers


def postprocess(result: dict[str, Any], generator, request, public) -> dict[str, Any]:
    """Post-processing hook (after ``web.openapi.postprocess`` added the plain Django operations): no NUL
    in any input, and every object schema closed."""
    no_nul_in_inputs(result)
    return close_objects(result)


NO_NUL = "^[^\\u0000]*$"


def no_nul_in_inputs(result: dict[str, Any]) -> None:
    """Input strings never hold NUL (PostgreSQL text cannot): serializers and RejectNulMiddleware
    refuse it, and the document says so with a pattern on every free-form input string."""

    def free_string(schema: dict[str, Any]) -> bool:
        return schema.get("type") == "string" and not ({"enum", "pattern", "format"} & set(schema))

    def visit(schema: Any) -> None:
        if isinstance(schema, dict):
            if free_string(schema):
                schema["pattern"] = NO_NUL
            for value in schema.get("properties", {}).values():
                visit(value)

    schemas = result.get("components", {}).get("schemas", {})
    for name, schema in schemas.items():
        if name.endswith("Request"):
            visit(schema)
    for operations in result.get("paths", {}).values():
        for operation in operations.values():
            for parameter in operation.get("parameters", []):
                if parameter.get("in") in ("path", "query"):
                    visit(parameter.get("schema"))


def close_objects(result: dict[str, Any]) -> dict[str, Any]:
    """Every object schema is closed (``additionalProperties: false``) unless it says otherwise."""

    def visit(node: Any) -> None:
        if isinstance(node, dict):
            if node.get("type") == "object" and "properties" in node and "additionalProperties" not in node:
                node["additionalProperties"] = False
            for value in node.values():
                visit(value)
        elif isinstance(node, list):
            for value in node:
                visit(value)

    visit(result.get("components", {}).get("schemas", {}))
    visit(result.get("paths", {}))
    return result
