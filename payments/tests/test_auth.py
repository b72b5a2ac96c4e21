"""Logins (WeChat code2session, password) and JWT refresh/logout (``payments.auth``)."""

from datetime import timedelta

import jwt
import pytest
from django.conf import settings

from core.jwt_auth import SessionRefreshToken, token_for
from core.tests.factories import UserFactory
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
    access = SessionRefreshToken.for_user(user).access_token
    access.set_exp(lifetime=-timedelta(seconds=60))  # past the 5 s leeway
    assert api.get("/api/v1/orders/", HTTP_AUTHORIZATION=f"Bearer {access}").status_code == 401
    token = token_for(user)
    user.is_active = False
    user.save()
    assert api.get("/api/v1/orders/", HTTP_AUTHORIZATION=f"Bearer {token}").status_code == 401


def test_anonymous_gets_401_everywhere(api):
    for path in ["/api/v1/orders/", "/api/v1/wallet/", "/api/v1/lockers/cabinets/"]:
        response = api.get(path)
        assert response.status_code == 401, path
        assert response.json()["error"]["code"] == "not_authenticated"


# --- Access and refresh tokens (djangorestframework-simplejwt): claims, refresh, rotation, revocation -----
def login(api, username="bob", password="right-password-1") -> dict:
    if not UserFactory._meta.model.objects.filter(username=username).exists():
        UserFactory(username=username, password=password)
    answer = api.post("/api/v1/auth/token", {"username": username, "password": password}, format="json")
    assert answer.status_code == 200, answer.content
    return answer.json()


def works(api, access: str) -> bool:
    status = api.get("/api/v1/wallet/", HTTP_AUTHORIZATION=f"Bearer {access}").status_code
    assert status in (200, 401)
    return status == 200


def refresh(api, token: str):
    return api.post("/api/v1/auth/token/refresh", {"refresh": token}, format="json")


def test_tokens_carry_the_standard_claims(api):
    pair = login(api)
    user = UserFactory._meta.model.objects.get(username="bob")

    access = jwt.decode(pair["token"], settings.JWT_SIGNING_KEY, algorithms=["HS256"], audience="locker-payments-api")
    refresh_claims = jwt.decode(
        pair["refresh"], settings.JWT_SIGNING_KEY, algorithms=["HS256"], audience="locker-payments-api"
    )

    assert access["iss"] == refresh_claims["iss"] == "locker-payments"
    assert str(access["sub"]) == str(user.pk) == str(refresh_claims["sub"])
    assert access["token_type"] == "access" and refresh_claims["token_type"] == "refresh"
    assert access["jti"] != refresh_claims["jti"] and access["rjti"] == refresh_claims["jti"]
    assert access["exp"] - access["iat"] == pair["expires_in"] == settings.SIMPLE_JWT["ACCESS_TOKEN_LIFETIME"].seconds
    assert refresh_claims["exp"] > access["exp"]
    # the database keeps the session's id and times, never the token itself
    session = user.outstandingtoken_set.get()
    assert session.jti == refresh_claims["jti"] and session.token == ""


def test_a_refresh_token_is_not_an_access_token_and_the_audience_is_checked(api):
    pair = login(api)
    assert not works(api, pair["refresh"])
    claims = jwt.decode(pair["token"], settings.JWT_SIGNING_KEY, algorithms=["HS256"], audience="locker-payments-api")
    for change in ({"aud": "another-api"}, {"iss": "someone-else"}):
        forged = jwt.encode({**claims, **change}, settings.JWT_SIGNING_KEY, algorithm="HS256")
        assert not works(api, forged), change
    assert refresh(api, pair["token"]).status_code == 401  # an access token cannot refresh


def test_refresh_rotates_and_the_old_pair_stops_working(api):
    first = login(api)
    assert works(api, first["token"])

    second = refresh(api, first["refresh"])

    assert second.status_code == 200
    new = second.json()
    assert set(new) == {"token", "refresh", "expires_in"}
    assert new["refresh"] != first["refresh"] and new["token"] != first["token"]
    assert works(api, new["token"])
    assert not works(api, first["token"])  # a copy of the old access token dies with its refresh token
    third = refresh(api, new["refresh"])  # the new refresh token works once too
    assert third.status_code == 200 and works(api, third.json()["token"])


def test_a_reused_refresh_token_revokes_every_session(api):
    """A rotated refresh token presented again: someone else has a copy (stolen). Everything is revoked."""
    phone = login(api)
    laptop = login(api)
    rotated = refresh(api, phone["refresh"]).json()

    reuse = refresh(api, phone["refresh"])

    assert reuse.status_code == 401 and reuse.json()["error"]["code"] == "authentication_failed"
    assert not works(api, rotated["token"]) and not works(api, laptop["token"])
    assert refresh(api, rotated["refresh"]).status_code == 401
    assert refresh(api, laptop["refresh"]).status_code == 401
    assert works(api, login(api)["token"])  # signing in again works


def test_logout_revokes_that_session_only(api):
    phone = login(api)
    laptop = login(api)

    out = api.post("/api/v1/auth/logout", {"refresh": phone["refresh"]}, format="json")

    assert out.status_code == 204
    assert not works(api, phone["token"])
    assert works(api, laptop["token"])
    assert works(api, refresh(api, laptop["refresh"]).json()["token"])
    # the logged-out refresh token is dead; presenting it again counts as reuse (see above)
    assert refresh(api, phone["refresh"]).status_code == 401


def test_logout_everywhere_revokes_every_session(api):
    phone = login(api)
    laptop = login(api)

    out = api.post("/api/v1/auth/logout", {"refresh": phone["refresh"], "everywhere": True}, format="json")

    assert out.status_code == 204
    assert not works(api, phone["token"]) and not works(api, laptop["token"])
    assert refresh(api, laptop["refresh"]).status_code == 401


@pytest.mark.parametrize(
    "body", [{}, {"refresh": 12}, {"refresh": "x", "extra": 1}, {"refresh": "x", "everywhere": "yes"}]
)
def test_bad_logout_and_refresh_input_is_400(api, body):
    for path in ("/api/v1/auth/logout", "/api/v1/auth/token/refresh"):
        if "everywhere" in body and path.endswith("refresh"):
            continue
        answer = api.post(path, body, format="json")
        assert answer.status_code == 400 and answer.json()["error"]["code"] == "invalid_input", (path, body)


def test_garbage_refresh_token_is_401(api):
    for path in ("/api/v1/auth/logout", "/api/v1/auth/token/refresh"):
        answer = api.post(path, {"refresh": "not-a-jwt"}, format="json")
        assert answer.status_code == 401 and answer.json()["error"]["code"] == "authentication_failed"


def test_wechat_login_answers_a_pair_that_refreshes(api):
    first = api.post("/api/v1/auth/wechat/login", {"code": "mini-1"}, format="json").json()
    assert set(first) == {"token", "refresh", "expires_in", "openid"}
    assert works(api, refresh(api, first["refresh"]).json()["token"])


@pytest.mark.django_db(transaction=True)
def test_concurrent_refreshes_with_one_token_give_one_pair():
    from rest_framework.test import APIClient

    from conftest import run_concurrently

    pair = login(APIClient())

    results = run_concurrently(lambda: refresh(APIClient(), pair["refresh"]).status_code, args_list=[(), (), (), ()])

    assert sorted(results) == [200, 401, 401, 401]


def test_the_back_office_lists_sessions_without_their_tokens_and_revokes_them(api, admin_client):
    from django.urls import reverse

    pair = login(api)
    page = admin_client.get(reverse("admin:token_blacklist_outstandingtoken_changelist"))
    assert page.status_code == 200 and "bob" in page.content.decode()
    session = UserFactory._meta.model.objects.get(username="bob").outstandingtoken_set.get()
    detail = admin_client.get(reverse("admin:token_blacklist_outstandingtoken_change", args=[session.pk]))
    assert detail.status_code == 200 and pair["refresh"] not in detail.content.decode()
    assert pair["refresh"] not in page.content.decode()

    done = admin_client.post(
        reverse("admin:token_blacklist_outstandingtoken_changelist"),
        {"action": "revoke_sessions_of_these_users", "_selected_action": [session.pk]},
    )

    assert done.status_code == 302
    assert not works(api, pair["token"])
    assert refresh(api, pair["refresh"]).status_code == 401
