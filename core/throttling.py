"""Rate limits on the actions that cost money or hit a gateway: DRF throttling on the default cache
(Redis in production, the database cache without REDIS_URL).

A view opts in with ``throttle_scope = "<scope>"``, a key of ``settings.THROTTLE_RATES``
(``"N/s"``, ``"N/m"``, ``"N/h"`` or ``"N/d"``). Only its unsafe methods (POST...) are counted:
listing your refunds is not a refund request. Two limits apply to each:

- per user: the scope's rate, counted per signed-in user (per ``username`` for the password
  login, whose caller has no user yet; the WeChat login has only the address limit);
- per client address: ``THROTTLE_ADDRESS_FACTOR`` times that rate (several people can share an
  address). The address is the peer's, or, behind ``NUM_PROXIES`` reverse proxies, the one they
  saw (``X-Forwarded-For``): never a header value a client can choose.

Over a limit the answer is 429 ``throttled`` in the one error shape with ``Retry-After``
(``core/api.py``). Gateway notifications are plain Django views, never throttled: a gateway's
retry must never be turned away.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterator
from contextlib import contextmanager
from functools import wraps
from types import SimpleNamespace

from django.conf import settings
from django.core.cache import cache
from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from rest_framework.permissions import SAFE_METHODS
from rest_framework.throttling import SimpleRateThrottle


class _ScopedRateThrottle(SimpleRateThrottle):
    """The view's ``throttle_scope`` rate, read from settings at each request (not at import)."""

    kind = ""

    def __init__(self) -> None:  # SimpleRateThrottle reads the rate here; we do per request
        pass

    def allow_request(self, request, view) -> bool:
        self.scope = getattr(view, "throttle_scope", None)
        if not self.scope or request.method in SAFE_METHODS:
            return True
        self.rate = settings.THROTTLE_RATES[self.scope]
        self.num_requests, self.duration = self.parse_rate(self.rate)
        self.num_requests *= self.factor()
        with _one_at_a_time(self.get_cache_key(request, view)):
            return super().allow_request(request, view)

    def factor(self) -> int:
        return 1

    def get_cache_key(self, request, view) -> str | None:
        ident = self.identity(request)
        if ident is None:
            return None
        # hashed: a username or forwarded address is the client's text (NUL, length, any script)
        digest = hashlib.sha256(ident.encode("utf-8", "surrogatepass")).hexdigest()[:32]
        return f"throttle:{self.scope}:{self.kind}:{digest}"

    def identity(self, request) -> str | None:
        raise NotImplementedError


@contextmanager
def _one_at_a_time(key: str | None) -> Iterator[None]:
    """DRF's throttle reads a key's request history and writes it back: requests arriving together
    all read the same history and all pass (100 parallel logins against a limit of 50 all got in).
    One request per key at a time: a Redis lock with django-redis (``cache.lock``), a PostgreSQL
    session advisory lock on the database cache (requests are not atomic, so the history is
    committed before the lock is let go)."""
    if key is None:
        yield
        return
    if hasattr(cache, "lock"):  # django-redis
        with cache.lock(f"{key}:lock", timeout=5, blocking_timeout=5):
            yield
        return
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_lock(hashtext(%s))", [key])
        try:
            yield
        finally:
            cursor.execute("SELECT pg_advisory_unlock(hashtext(%s))", [key])


class UserRateThrottle(_ScopedRateThrottle):
    """Per signed-in user; for the password login, per username asked for."""

    kind = "user"

    def identity(self, request) -> str | None:
        if request.user and request.user.is_authenticated:
            return str(request.user.pk)
        username = _posted_username(request)
        return f"name:{username.strip().lower()}" if isinstance(username, str) and username.strip() else None


def _posted_username(request) -> object:
    """The ``username`` a login posts, read without taking the body from the view: a JSON body of the
    API (the view still reports a malformed one), or a page's form."""
    if not isinstance(request, HttpRequest):  # DRF's Request: its data must stay unparsed here
        if request.content_type != "application/json":
            return None
        try:
            data = json.loads(request.body)
        except ValueError:
            return None
    else:
        data = request.POST
    return data.get("username") if isinstance(data, dict) else None


class AddressRateThrottle(_ScopedRateThrottle):
    """Per client address, ``THROTTLE_ADDRESS_FACTOR`` times the scope's rate."""

    kind = "address"

    def factor(self) -> int:
        return settings.THROTTLE_ADDRESS_FACTOR

    def identity(self, request) -> str | None:
        return self.get_ident(request) or None


def throttle_page(scope: str):
    """The same limits for the web pages' POSTs (plain Django views): ``@throttle_page("topup")``.

    Over a limit: 429 with ``Retry-After``, in the one error shape for the pages' scripts
    (``Accept: application/json``), as a sentence otherwise.
    """

    def decorate(view):
        @wraps(view)
        def wrapper(request: HttpRequest, *args, **kwargs) -> HttpResponse:
            holder = SimpleNamespace(throttle_scope=scope)
            throttles = [UserRateThrottle(), AddressRateThrottle()]
            waits = [throttle.wait() or 1 for throttle in throttles if not throttle.allow_request(request, holder)]
            if not waits:
                return view(request, *args, **kwargs)
            wait = max(1, math.ceil(max(waits)))
            message = f"Too many requests; try again in {wait} seconds."
            if "application/json" in request.headers.get("Accept", ""):
                details = {"retry_after": wait, "scope": scope}
                response = JsonResponse({"error": {"code": "throttled", "message": message, "details": details}})
            else:
                response = HttpResponse(message, content_type="text/plain; charset=utf-8")
            response.status_code = 429
            response["Retry-After"] = str(wait)
            return response

        return wrapper

    return decorate
