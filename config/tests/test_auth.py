from datetime import timedelta

import jwt
import pytest
from django.conf import settings
from django.utils import timezone

from config.jwt_auth import token_for
from config.tests.factories import UserFactory
from payments.models import WeChatIdentity

pytestmark = pytest.mark.django_db


def test_wechat_login_is_deterministic_per_code_and_creates_one_user(api):
    first = api.post("/api/v1/auth/wechat/login", {"code": "abc123"}, format="json")
    again = api.post("/api/v1/auth/wechat/login", {"code": "abc123"}, format="json")
    other = api.post("/api/v1/auth/wechat/login", {"code": "zzz999"}, format="json")
    assert first.status_code == again.status_code == other.status_code == 200
    assert first.json()["openid"] == again.json()["openid"] != other.json()["openid"]
    assert WeChatIdentity.objects.count() == 2
    token = first.json()["token"]
    me = api.get("/api/v1/orders/", HTTP_AUTHORIZATION=f"Bearer {token}")
    assert me.status_code == 200


def test_password_login_gives_a_working_token(api):
    UserFactory(username="alice", password="right-password-1")
    bad = api.post("/api/v1/auth/token", {"username": "alice", "password": "wrong"}, format="json")
    assert bad.status_code == 401 and bad.json()["error"]["code"] == "authentication_failed"
    ok = api.post("/api/v1/auth/token", {"username": "alice", "password": "right-password-1"}, format="json")
    assert ok.status_code == 200
    assert api.get("/api/v1/wallet/", HTTP_AUTHORIZATION=f"Bearer {ok.json()['token']}").status_code == 200


@pytest.mark.parametrize(
    "header",
    [
        "Bearer not-a-jwt",
        "Bearer",
        "Bearer a b",
        "Bearer "
        + jwt.encode(
            {"sub": "1", "exp": 9999999999, "typ": "access"},
            "another-key-that-is-long-enough-for-hs256",
            algorithm="HS256",
        ),
    ],
)
def test_bad_tokens_are_401_in_the_error_shape(api, header):
    response = api.get("/api/v1/orders/", HTTP_AUTHORIZATION=header)
    assert response.status_code == 401
    assert set(response.json()["error"]) == {"code", "message", "details"}


def test_expired_token_and_inactive_user_are_refused(api):
    user = UserFactory()
    expired = jwt.encode(
        {"sub": str(user.pk), "exp": timezone.now() - timedelta(seconds=1), "typ": "access"},
        settings.JWT_SIGNING_KEY,
        algorithm="HS256",
    )
    assert api.get("/api/v1/orders/", HTTP_AUTHORIZATION=f"Bearer {expired}").status_code == 401
    token = token_for(user)
    user.is_active = False
    user.save()
    assert api.get("/api/v1/orders/", HTTP_AUTHORIZATION=f"Bearer {token}").status_code == 401


def test_anonymous_gets_401_everywhere(api):
    for path in ["/api/v1/orders/", "/api/v1/wallet/", "/api/v1/lockers/cabinets/"]:
        response = api.get(path)
        assert response.status_code == 401, path
        assert response.json()["error"]["code"] == "not_authenticated"
