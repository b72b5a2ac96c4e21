"""JWT bearer tokens (djangorestframework-simplejwt): an access token for every API request and a
refresh token to get the next pair, rotated on every use; logging out revokes them.

- **Claims** (RFC 7519): ``iss`` ``locker-payments``, ``aud`` ``locker-payments-api``, ``sub`` (the
  user id), ``iat``, ``exp``, ``jti``, and ``token_type`` (``access`` / ``refresh``). An access token
  also names the refresh token it came from (``rjti``). HS256 with ``JWT_SIGNING_KEY``. Lifetimes:
  ``JWT_ACCESS_TTL_SECONDS`` (default 15 minutes), ``JWT_REFRESH_TTL_SECONDS`` (default 30 days).
- **Rotation**: ``rotate(refresh)`` blacklists the refresh token it is given and answers a new pair.
  The access tokens of a blacklisted refresh token stop working at once (``JWTAuthentication``
  checks ``rjti``), so a copy of an old access token dies when its owner refreshes.
- **Revocation**: ``revoke(refresh)`` (log out) blacklists that refresh token and so its access
  tokens; ``everywhere=True`` every session of the user (``revoke_user``: the admin's action too).
- **Reuse**: a refresh token presented again after it was rotated or revoked means that someone
  else has a copy (a stolen token): every session of its user is revoked and the call answers 401.

The refresh tokens' ids live in simplejwt's ``token_blacklist`` tables (``OutstandingToken``,
``BlacklistedToken``); each check is one indexed query.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import exceptions
from rest_framework_simplejwt import authentication
from rest_framework_simplejwt.exceptions import InvalidToken, TokenBackendError
from rest_framework_simplejwt.settings import api_settings
from rest_framework_simplejwt.state import token_backend
from rest_framework_simplejwt.token_blacklist.models import BlacklistedToken, OutstandingToken
from rest_framework_simplejwt.tokens import AccessToken, BlacklistMixin, RefreshToken
from rest_framework_simplejwt.utils import datetime_from_epoch

from core.errors import AuthenticationError

logger = logging.getLogger(__name__)

REFRESH_CLAIM = "rjti"  # an access token's refresh token (its jti)


class SessionRefreshToken(RefreshToken):
    """A refresh token whose access tokens name it, so that revoking it revokes them. Its outstanding row
    keeps its id and times, not its text (a copy of the database holds no working credential)."""

    @classmethod
    def for_user(cls, user) -> SessionRefreshToken:
        token = super(BlacklistMixin, cls).for_user(user)  # Token.for_user: the claims, without simplejwt's row
        OutstandingToken.objects.create(
            user=user,
            jti=token[api_settings.JTI_CLAIM],
            token="",
            created_at=token.current_time,
            expires_at=datetime_from_epoch(token["exp"]),
        )
        return token

    @property
    def access_token(self) -> AccessToken:
        access = super().access_token
        access[REFRESH_CLAIM] = self[api_settings.JTI_CLAIM]
        return access


@dataclass(frozen=True)
class TokenPair:
    access: str
    refresh: str

    def as_answer(self) -> dict[str, Any]:
        """The login and refresh answer: ``{token, refresh, expires_in}`` (seconds of the access token)."""
        return {
            "token": self.access,
            "refresh": self.refresh,
            "expires_in": int(api_settings.ACCESS_TOKEN_LIFETIME.total_seconds()),
        }


def issue_tokens(user) -> TokenPair:
    """A new session for ``user``: a refresh token (recorded as outstanding) and its access token."""
    refresh = SessionRefreshToken.for_user(user)
    return TokenPair(access=str(refresh.access_token), refresh=str(refresh))


def token_for(user) -> str:
    """An access token of a new session (tests, benchmarks, the login views through ``issue_tokens``)."""
    return issue_tokens(user).access


def _refresh_payload(raw: str) -> dict[str, Any]:
    """The verified claims of a refresh token (signature, ``exp``, ``iss``, ``aud``, type); 401 otherwise."""
    try:
        payload = token_backend.decode(raw, verify=True)
    except TokenBackendError as exc:
        raise AuthenticationError("The refresh token is invalid or expired.") from exc
    if payload.get(api_settings.TOKEN_TYPE_CLAIM) != "refresh" or not payload.get(api_settings.JTI_CLAIM):
        raise AuthenticationError("This is not a refresh token.")
    return payload


def _user(payload: dict[str, Any]):
    user = get_user_model().objects.filter(pk=str(payload.get(api_settings.USER_ID_CLAIM, ""))).first()
    if user is None or not user.is_active:
        raise AuthenticationError("This account is disabled or deleted.")
    return user


def revoke_user(user) -> int:
    """Blacklist every unexpired refresh token of ``user`` (their access tokens die with them)."""
    live = OutstandingToken.objects.filter(user=user, expires_at__gt=timezone.now(), blacklistedtoken__isnull=True)
    revoked = BlacklistedToken.objects.bulk_create(
        [BlacklistedToken(token=token) for token in live], ignore_conflicts=True
    )
    logger.warning("tokens: revoked every session of user %s (%d refresh tokens)", user.pk, len(revoked))
    return len(revoked)


def rotate(raw: str) -> TokenPair:
    """Exchange a refresh token for a new pair; the one given is blacklisted (it works once).

    Raises ``AuthenticationError`` (401) for a token that is not a valid refresh token of an active
    user, and for one used before: then every session of the user is revoked first.
    """
    payload = _refresh_payload(raw)
    user = _user(payload)
    jti = payload[api_settings.JTI_CLAIM]
    with transaction.atomic():
        outstanding = OutstandingToken.objects.select_for_update().filter(jti=jti).first()
        reused = outstanding is None or BlacklistedToken.objects.filter(token=outstanding).exists()
        if not reused:
            BlacklistedToken.objects.create(token=outstanding)
            pair = issue_tokens(user)
    if reused:
        logger.warning("tokens: refresh token %s of user %s used again: revoking every session", jti, user.pk)
        revoke_user(user)
        raise AuthenticationError("This refresh token was already used; sign in again.")
    return pair


def revoke(raw: str, *, everywhere: bool = False) -> None:
    """Log out: blacklist this refresh token (and with ``everywhere`` every session of its user).

    Raises ``AuthenticationError`` (401) when ``raw`` is not a valid refresh token."""
    payload = _refresh_payload(raw)
    user = _user(payload)
    outstanding = OutstandingToken.objects.filter(jti=payload[api_settings.JTI_CLAIM]).first()
    if outstanding is not None:  # a token of ours always has its row; without one there is nothing to end
        BlacklistedToken.objects.get_or_create(token=outstanding)
    logger.info("tokens: session %s of user %s logged out", payload[api_settings.JTI_CLAIM], user.pk)
    if everywhere:
        revoke_user(user)


class JWTAuthentication(authentication.JWTAuthentication):
    """``Authorization: Bearer <access token>``: simplejwt's checks, then the session not revoked."""

    def get_validated_token(self, raw_token: bytes) -> AccessToken:
        try:
            token = super().get_validated_token(raw_token)
        except InvalidToken as exc:
            raise exceptions.AuthenticationFailed("Invalid or expired token.") from exc
        refresh_jti = token.get(REFRESH_CLAIM)
        if not refresh_jti or BlacklistedToken.objects.filter(token__jti=refresh_jti).exists():
            raise exceptions.AuthenticationFailed("This session was logged out or revoked; sign in again.")
        return token


class JWTScheme(OpenApiAuthenticationExtension):
    target_class = "core.jwt_auth.JWTAuthentication"
    name = "bearerAuth"
    priority = 1  # before drf-spectacular's own extension for simplejwt's class

    def get_security_definition(self, auto_schema):
        return {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
