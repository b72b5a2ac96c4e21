"""Login: WeChat mini-program (code2session) and a username/password login for the web demo; refreshing
the tokens (rotation) and logging out (revocation). The tokens themselves: ``core/jwt_auth.py``."""

from __future__ import annotations

import base64
import hashlib
import hmac

import requests
from django.conf import settings
from django.contrib.auth import authenticate, get_user_model
from django.db import IntegrityError, transaction
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from core.api import StrictSerializer
from core.errors import AuthenticationError, ChannelNotConfigured, GatewayUnavailable
from core.jwt_auth import issue_tokens, revoke, rotate
from core.openapi import RETRY_AFTER, errors
from payments.models import WeChatIdentity


def wechat_code2session(code: str) -> str:
    """Exchange a mini-program login code for the user's openid.

    In sandbox mode the openid is derived from the code (deterministic, no network), so the
    same code always logs in the same user.
    """
    if settings.SANDBOX_ENABLED and not settings.WECHAT_MINI_SECRET:
        digest = hmac.new(settings.SECRET_KEY.encode(), code.encode(), hashlib.sha256).digest()
        return "o" + base64.urlsafe_b64encode(digest).decode()[:27]
    if not (settings.WECHAT_MINI_APPID and settings.WECHAT_MINI_SECRET):
        raise ChannelNotConfigured("WeChat login is not configured.")
    try:
        answer = requests.get(
            settings.WECHAT_CODE2SESSION_URL,
            params={
                "appid": settings.WECHAT_MINI_APPID,
                "secret": settings.WECHAT_MINI_SECRET,
                "js_code": code,
                "grant_type": "authorization_code",
            },
            timeout=(3, 5),
        ).json()
    except (requests.RequestException, ValueError) as exc:
        raise GatewayUnavailable("WeChat login is unavailable; try again.") from exc
    if not answer.get("openid"):
        raise AuthenticationError(
            "The WeChat login code is invalid or expired.",
            code="invalid_login_code",
            details={"errcode": answer.get("errcode")},
        )
    return answer["openid"]


def user_for_openid(openid: str):
    identity = WeChatIdentity.objects.select_related("user").filter(openid=openid).first()
    if identity:
        return identity.user
    try:
        with transaction.atomic():
            user = get_user_model().objects.create_user(username=f"wx_{openid}"[:150])
            user.set_unusable_password()
            user.save(update_fields=["password"])
            WeChatIdentity.objects.create(user=user, openid=openid)
            return user
    except IntegrityError:  # a concurrent first login with the same code won
        return WeChatIdentity.objects.select_related("user").get(openid=openid).user


class WeChatLoginInput(StrictSerializer):
    code = serializers.CharField(max_length=128, trim_whitespace=False, help_text="`wx.login()`'s code")


class PasswordLoginInput(StrictSerializer):
    username = serializers.CharField(max_length=150, trim_whitespace=False)
    password = serializers.CharField(max_length=128, trim_whitespace=False)


class RefreshInput(StrictSerializer):
    refresh = serializers.CharField(max_length=4096, trim_whitespace=False, help_text="The refresh token.")


class LogoutInput(RefreshInput):
    everywhere = serializers.BooleanField(
        required=False, default=False, help_text="Also end every other session of this user (a lost phone)."
    )


class TokenOut(serializers.Serializer):
    token = serializers.CharField(help_text="The access token (a JWT): send it as `Authorization: Bearer <token>`.")
    refresh = serializers.CharField(
        help_text="The refresh token: `POST auth/token/refresh` gives the next pair when the access token expires. "
        "It works once (rotation); keep it secret."
    )
    expires_in = serializers.IntegerField(help_text="Seconds until the access token expires.")


class WeChatTokenOut(TokenOut):
    openid = serializers.CharField(help_text="The user's openid for the mini-program (JSAPI payments).")


class WeChatLoginView(APIView):
    authentication_classes: list = []
    permission_classes = [AllowAny]
    throttle_scope = "login"

    @extend_schema(
        operation_id="auth_wechat_login",
        tags=["auth"],
        request=WeChatLoginInput,
        responses={
            200: WeChatTokenOut,
            **errors(
                400,
                415,
                429,
                502,
                503,
                c401="`authentication_failed`: the code is invalid or expired, or the account is disabled",
            ),
        },
        parameters=[RETRY_AFTER],
        auth=[],
    )
    def post(self, request):
        data = WeChatLoginInput(data=request.data)
        data.is_valid(raise_exception=True)
        openid = wechat_code2session(data.validated_data["code"])
        user = user_for_openid(openid)
        if not user.is_active:
            raise AuthenticationError("This account is disabled.")
        return Response({**issue_tokens(user).as_answer(), "openid": openid})


class PasswordLoginView(APIView):
    authentication_classes: list = []
    permission_classes = [AllowAny]
    throttle_scope = "login"

    @extend_schema(
        operation_id="auth_token",
        tags=["auth"],
        request=PasswordLoginInput,
        responses={200: TokenOut, **errors(400, 415, 429, c401="`authentication_failed`: wrong username or password")},
        parameters=[RETRY_AFTER],
        auth=[],
    )
    def post(self, request):
        data = PasswordLoginInput(data=request.data)
        data.is_valid(raise_exception=True)
        user = authenticate(request, **data.validated_data)
        if user is None:
            raise AuthenticationError("Wrong username or password.")
        return Response(issue_tokens(user).as_answer())


class TokenRefreshView(APIView):
    authentication_classes: list = []
    permission_classes = [AllowAny]
    throttle_scope = "login"

    @extend_schema(
        operation_id="auth_token_refresh",
        tags=["auth"],
        request=RefreshInput,
        responses={
            200: TokenOut,
            **errors(
                400,
                415,
                429,
                c401="`authentication_failed`: the refresh token is invalid, expired, revoked or was already used "
                "(then every session of the user is revoked: sign in again)",
            ),
        },
        parameters=[RETRY_AFTER],
        auth=[],
    )
    def post(self, request):
        data = RefreshInput(data=request.data)
        data.is_valid(raise_exception=True)
        return Response(rotate(data.validated_data["refresh"]).as_answer())


class LogoutView(APIView):
    authentication_classes: list = []
    permission_classes = [AllowAny]
    throttle_scope = "login"

    @extend_schema(
        operation_id="auth_logout",
        tags=["auth"],
        request=LogoutInput,
        responses={
            204: None,
            **errors(400, 415, 429, c401="`authentication_failed`: the refresh token is invalid or expired"),
        },
        parameters=[RETRY_AFTER],
        auth=[],
    )
    def post(self, request):
        data = LogoutInput(data=request.data)
        data.is_valid(raise_exception=True)
        revoke(data.validated_data["refresh"], everywhere=data.validated_data["everywhere"])
        return Response(status=204)
