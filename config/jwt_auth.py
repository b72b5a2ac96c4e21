"""JWT bearer tokens: issued at login, checked on every API request."""

from __future__ import annotations

from datetime import UTC, datetime

import jwt
from django.conf import settings
from django.contrib.auth import get_user_model
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions

ALGORITHM = "HS256"


def token_for(user) -> str:
    now = datetime.now(UTC)
    payload = {"sub": str(user.pk), "iat": now, "exp": now + settings.JWT_TTL, "typ": "access"}
    return jwt.encode(payload, settings.JWT_SIGNING_KEY, algorithm=ALGORITHM)


class JWTAuthentication(authentication.BaseAuthentication):
    keyword = "Bearer"

    def authenticate(self, request):
        header = authentication.get_authorization_header(request).split()
        if not header or header[0].lower() != self.keyword.lower().encode():
            return None
        if len(header) != 2:
            raise exceptions.AuthenticationFailed("Malformed Authorization header.")
        try:
            payload = jwt.decode(
                header[1], settings.JWT_SIGNING_KEY, algorithms=[ALGORITHM], options={"require": ["exp", "sub"]}
            )
        except jwt.PyJWTError as exc:
            raise exceptions.AuthenticationFailed("Invalid or expired token.") from exc
        if payload.get("typ") != "access" or not str(payload["sub"]).isdigit():
            raise exceptions.AuthenticationFailed("Invalid token.")
        user = get_user_model().objects.filter(pk=int(payload["sub"]), is_active=True).first()
        if user is None:
            raise exceptions.AuthenticationFailed("User inactive or deleted.")
        return user, payload

    def authenticate_header(self, request) -> str:
        return self.keyword


class JWTScheme(OpenApiAuthenticationExtension):
    target_class = "config.jwt_auth.JWTAuthentication"
    name = "bearerAuth"

    def get_security_definition(self, auto_schema):
        return {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
