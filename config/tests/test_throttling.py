"""Rate limits: per user and per client address on login, payment creation, sync/close, refund
requests and top-ups; 429 in the one error shape with Retry-After; never on notifications."""

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from rest_framework.test import APIClient

from core.jwt_auth import token_for
from core.tests.factories import UserFactory

pytestmark = pytest.mark.django_db
BASE = Path(django_settings.BASE_DIR)

# (scope, method, path): every throttled action; bodies are left empty (400) or name nothing (404):
# the limit counts requests before they are read, so no gateway is needed
ACTIONS = [
    ("payment_create", "/api/v1/payments/"),
    ("payment_sync", "/api/v1/payments/PY-NONE/sync/"),
    ("payment_sync", "/api/v1/payments/PY-NONE/close/"),
    ("refund", "/api/v1/refunds/"),
    ("topup", "/api/v1/wallet/topups/"),
]


def client_for(user, address="10.0.0.1", **headers):
    client = APIClient(REMOTE_ADDR=address, **headers)
    if user is not None:
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {token_for(user)}")
    return client


def limits(settings, *, rate="2/m", factor=10):
    settings.THROTTLE_RATES = dict.fromkeys(settings.THROTTLE_RATES, "100000/s")
    settings.THROTTLE_ADDRESS_FACTOR = factor
    return lambda scope: settings.THROTTLE_RATES.update({scope: rate})


def assert_throttled(response, scope):
    assert response.status_code == 429, response.content
    assert response.json()["error"]["code"] == "throttled"
    assert set(response.json()["error"]) == {"code", "message", "details"}
    wait = int(response["Retry-After"])
    assert 1 <= wait <= 60
    assert response.json()["error"]["details"] == {"retry_after": wait, "scope": scope}


@pytest.mark.parametrize(("scope", "path"), ACTIONS)
def test_each_action_is_limited_per_user(settings, scope, path):
    limits(settings)(scope)
    alice, bob = UserFactory(), UserFactory()
    for _ in range(2):
        assert client_for(alice).post(path, {}, format="json").status_code in (400, 404)

    assert_throttled(client_for(alice).post(path, {}, format="json"), scope)
    # another user at the same address is counted apart
    assert client_for(bob).post(path, {}, format="json").status_code in (400, 404)


@pytest.mark.parametrize(("scope", "path"), ACTIONS)
def test_each_action_is_limited_per_client_address(settings, scope, path):
    limits(settings, rate="2/m", factor=2)(scope)  # 4 per address
    for _ in range(4):
        assert client_for(UserFactory()).post(path, {}, format="json").status_code in (400, 404)

    assert_throttled(client_for(UserFactory()).post(path, {}, format="json"), scope)
    assert client_for(UserFactory(), address="10.0.0.2").post(path, {}, format="json").status_code in (400, 404)


def test_reading_is_not_counted(settings):
    limits(settings, rate="1/m", factor=1)("refund")
    user = UserFactory()
    for _ in range(3):
        assert client_for(user).get("/api/v1/refunds/").status_code == 200
    assert client_for(user).post("/api/v1/refunds/", {}, format="json").status_code == 400
    assert_throttled(client_for(user).post("/api/v1/refunds/", {}, format="json"), "refund")


def test_password_login_is_limited_per_username_and_per_address(settings):
    limits(settings, rate="2/m", factor=2)("login")
    UserFactory(username="carol")
    wrong = {"username": "carol", "password": "wrong"}
    for address in ("10.0.0.1", "10.0.0.2"):  # guessing from two addresses: the username's limit holds
        assert client_for(None, address).post("/api/v1/auth/token", wrong, format="json").status_code == 401
    assert_throttled(client_for(None, "10.0.0.3").post("/api/v1/auth/token", wrong, format="json"), "login")
    # the first address, three more names: its own limit (2 x 2) is reached
    for name in ("dave", "erin", "frank"):
        body = {"username": name, "password": "x"}
        assert client_for(None).post("/api/v1/auth/token", body, format="json").status_code == 401
    gina = {"username": "gina", "password": "x"}
    assert_throttled(client_for(None).post("/api/v1/auth/token", gina, format="json"), "login")
    # a body that is not JSON is counted too (by address): no way around the limit
    assert_throttled(client_for(None).post("/api/v1/auth/token", gina), "login")


def test_wechat_login_is_limited_per_address(settings):
    limits(settings, rate="1/m", factor=2)("login")
    for code in ("a", "b"):
        assert client_for(None).post("/api/v1/auth/wechat/login", {"code": code}, format="json").status_code == 200
    assert_throttled(client_for(None).post("/api/v1/auth/wechat/login", {"code": "c"}, format="json"), "login")
    ok = client_for(None, "10.0.0.9").post("/api/v1/auth/wechat/login", {"code": "c"}, format="json")
    assert ok.status_code == 200


def test_a_client_cannot_choose_its_address_with_x_forwarded_for(settings):
    limits(settings, rate="1/m", factor=1)("topup")
    for n in range(2):
        forged = client_for(UserFactory(), HTTP_X_FORWARDED_FOR=f"192.0.2.{n}")
        response = forged.post("/api/v1/wallet/topups/", {}, format="json")
    assert_throttled(response, "topup")


def test_behind_a_proxy_the_address_is_the_one_the_proxy_saw(settings):
    settings.REST_FRAMEWORK = {**django_settings.REST_FRAMEWORK, "NUM_PROXIES": 1}
    limits(settings, rate="1/m", factor=1)("topup")
    proxy = "127.0.0.1"  # every request comes from the proxy; it appends the client it saw

    def through_proxy(client_address):
        client = client_for(UserFactory(), proxy, HTTP_X_FORWARDED_FOR=f"198.51.100.7, {client_address}")
        return client.post("/api/v1/wallet/topups/", {}, format="json")

    assert through_proxy("203.0.113.1").status_code == 400
    assert through_proxy("203.0.113.2").status_code == 400  # another client behind the same proxy
    assert_throttled(through_proxy("203.0.113.1"), "topup")


def test_the_limit_lifts_after_retry_after(settings):
    limits(settings, rate="1/s", factor=10)("topup")
    user = UserFactory()
    assert client_for(user).post("/api/v1/wallet/topups/", {}, format="json").status_code == 400
    refused = client_for(user).post("/api/v1/wallet/topups/", {}, format="json")
    assert_throttled(refused, "topup")
    time.sleep(int(refused["Retry-After"]) + 0.05)
    assert client_for(user).post("/api/v1/wallet/topups/", {}, format="json").status_code == 400


@pytest.mark.parametrize("gateway", ["wechat", "alipay", "wallyt"])
def test_gateway_notifications_are_never_throttled(settings, gateways, gateway):
    settings.THROTTLE_RATES, settings.THROTTLE_ADDRESS_FACTOR = dict.fromkeys(settings.THROTTLE_RATES, "1/m"), 1
    client = APIClient(REMOTE_ADDR="10.0.0.1")
    for _ in range(5):  # junk: each is refused on its merits (signature), none is turned away unread
        response = client.post(f"/api/v1/payments/notify/{gateway}/", data=b"junk", content_type="text/plain")
        assert response.status_code in (400, 401)


def test_the_limits_live_in_redis_with_redis_url(settings, redis_cache):
    limits(settings)("topup")
    user = UserFactory()
    for _ in range(2):
        client_for(user).post("/api/v1/wallet/topups/", {}, format="json")
    assert_throttled(client_for(user).post("/api/v1/wallet/topups/", {}, format="json"), "topup")
    keys = [key.decode() for key in redis_cache.keys("*throttle:topup:*")]
    assert len(keys) == 2  # one per user, one per address
    assert all(0 < redis_cache.ttl(key) <= 60 for key in keys)


def test_a_malformed_rate_stops_the_settings_with_the_variable_to_fix():
    env = os.environ | {"THROTTLE_REFUND": "10 per hour", "DJANGO_SETTINGS_MODULE": "config.settings"}
    result = subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"],
        cwd=BASE,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "THROTTLE_REFUND must look like 20/m" in result.stderr


# --- the web checkout's pages: the same limits -------------------------------------------------

WEB_ACTIONS = [
    ("payment_create", "/orders/NO-SUCH/checkout/"),
    ("payment_sync", "/orders/NO-SUCH/sync/"),
    ("payment_sync", "/orders/NO-SUCH/payments/NO-SUCH/close/"),
    ("refund", "/orders/NO-SUCH/refund/"),
    ("topup", "/wallet/"),
]


@pytest.mark.parametrize(("scope", "path"), WEB_ACTIONS)
def test_the_web_pages_have_the_same_limits(settings, client, scope, path):
    limits(settings, rate="1/m", factor=10)(scope)
    client.force_login(UserFactory())
    assert client.post(path, {}, REMOTE_ADDR="10.0.0.1").status_code in (302, 400, 404)

    refused = client.post(path, {}, REMOTE_ADDR="10.0.0.1")

    assert refused.status_code == 429 and int(refused["Retry-After"]) >= 1
    assert refused.content.decode().startswith("Too many requests; try again in")


def test_the_waiting_pages_script_gets_the_one_error_shape(settings, client):
    limits(settings, rate="1/m", factor=10)("payment_sync")
    client.force_login(UserFactory())
    client.post("/orders/NO-SUCH/sync/", HTTP_ACCEPT="application/json")
    assert_throttled(client.post("/orders/NO-SUCH/sync/", HTTP_ACCEPT="application/json"), "payment_sync")


def test_the_sign_in_page_is_limited_per_username(settings, client):
    limits(settings, rate="2/m", factor=10)("login")
    UserFactory(username="hank")
    form = {"form": "password", "username": "hank", "password": "wrong"}
    for address in ("10.0.0.1", "10.0.0.2"):
        assert client.post("/login/", form, REMOTE_ADDR=address).status_code == 400
    assert client.post("/login/", form, REMOTE_ADDR="10.0.0.3").status_code == 429
    assert client.get("/login/").status_code == 200  # reading the page is not counted
