"""The gateways' notification endpoint: HTTP in, HTTP out. Everything else is the inbox's (``payments.inbox``).

Webhook views are outside request-wide transactions (the inbox commits the raw row first). Only the three
gateways' names are routed (anything else: 404, nothing stored); a body over the gateway's limit
(``inbox.BODY_LIMITS``), headers over ``inbox.HEADER_LIMIT`` or a body without a Content-Length are refused
before a row is written (413, 431, 411); a sender over its limit of bodies that do not verify is answered
429 when its body does not verify either (nothing stored).
"""

from __future__ import annotations

import time

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from core.api import error_body
from payments.gateways.base import NotificationReply
from payments.gateways.registry import GATEWAY_NAMES
from payments.inbox import BODY_LIMITS, HEADER_LIMIT, notification_receive, unverified_senders


def _reply(reply: NotificationReply) -> HttpResponse:
    response = HttpResponse(reply.body, status=reply.status, content_type=reply.content_type)
    # WeChat's FAIL reply is a 500 by design (so that it delivers again); the inbox logged why as a warning:
    # not an "Internal Server Error" for django.request's error log (a crash still is: it raises)
    response._has_been_logged = reply.status >= 500
    return response


def _refusal(status: int, code: str, message: str, **headers: str) -> JsonResponse:
    response = JsonResponse(error_body(code, message), status=status)
    for name, value in headers.items():
        response[name.replace("_", "-")] = value
    return response


@csrf_exempt
@require_POST
def notify_view(request: HttpRequest, gateway_name: str) -> HttpResponse:
    """Adapt HTTP: refuse what is not a gateway's notification before anything is stored, then receive."""
    if gateway_name not in GATEWAY_NAMES:
        return _refusal(404, "not_found", "No such notification endpoint.")
    limit = BODY_LIMITS[gateway_name]
    if "CONTENT_LENGTH" not in request.META:  # a chunked body: the gateways always say how long theirs are
        return _refusal(411, "length_required", "A notification must carry its Content-Length.")
    try:
        declared = int(request.META["CONTENT_LENGTH"] or 0)
    except ValueError:
        return _refusal(400, "invalid_input", "Bad Content-Length.")
    if declared > limit:
        return _refusal(413, "body_too_large", f"A {gateway_name} notification is at most {limit} bytes.")
    headers = {k: v for k, v in request.headers.items() if k.lower() not in ("cookie", "authorization")}
    if sum(len(k) + len(v) for k, v in headers.items()) > HEADER_LIMIT:
        return _refusal(431, "headers_too_large", f"A notification's headers are at most {HEADER_LIMIT} bytes.")
    body = request.read(limit + 1)  # never more than the limit, whatever Content-Length said
    if len(body) > limit:
        return _refusal(413, "body_too_large", f"A {gateway_name} notification is at most {limit} bytes.")
    remote_addr = request.META.get("REMOTE_ADDR")
    flooding = unverified_senders.over_limit(remote_addr, limit=settings.NOTIFY_UNVERIFIED_PER_MINUTE, now=time.time())
    reply = notification_receive(
        gateway_name=gateway_name, headers=headers, body=body, remote_addr=remote_addr, store_unverified=not flooding
    )
    if reply is None:  # from a flooding sender and it did not verify: nothing stored
        return _refusal(429, "throttled", "Too many notifications that do not verify.", Retry_After="60")
    return _reply(reply)
