"""Request checks that hold for every view."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse, JsonResponse

from core.api import error_body


class RejectNulMiddleware:
    """400, in the one error shape, for a NUL character in the path or the query string.

    PostgreSQL text cannot hold NUL, so a lookup of ``/orders/A%00/`` would fail in the database
    (a 500) instead of answering "no such order". Bodies are checked by the serializers.
    """

    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if "\x00" in request.path or any("\x00" in k or "\x00" in v for k, v in request.GET.items()):
            return JsonResponse(error_body("invalid_input", "A NUL character is not allowed."), status=400)
        return self.get_response(request)
