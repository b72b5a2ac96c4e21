"""The trust boundary's reported cases that are not one changed field: WeChat's key switch, Alipay's GBK
notifies, the order of answers, Wallyt RSA_1_256 and the API docs in production.
(One changed field, for every gateway, message and checked field: ``test_trust_boundary``.)"""

from __future__ import annotations

import base64
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from django.test import Client
from hypothesis import given, settings
from hypothesis import strategies as st

from core.audit import Actor
from core.errors import GatewayUnavailable
from payments.gateways import trust
from payments.gateways.registry import get_gateway, reset_gateways
from payments.gateways.trust import FieldMismatch
from payments.gateways.wallyt import rsa_sign, rsa_string_to_sign, rsa_verify
from payments.models import GatewayNotification, Payment
from payments.services import payment_apply_trade_status, payment_sync
from payments.tests.test_trust_boundary import notification_from, refund_world, snapshot, start_payment
from refunds.services import refund_apply_gateway_status, refund_sync

pytestmark = pytest.mark.django_db
VECTORS = Path(__file__).resolve().parent / "gateways" / "vectors"


def notify(sandbox, payment: Payment):
    trigger = f"{payment.gateway}/transactions/{payment.payment_no}/notify"
    return notification_from(sandbox, payment.gateway, {"out_trade_no": payment.payment_no}, trigger)


# --------------------------------------------------------------------------- 5. WeChat's key switch


@pytest.fixture
def both_keys(gateways, settings, tmp_path):
    """WeChat Pay configured with the public key AND a platform certificate directory (the switch)."""
    settings.WECHAT_PAY_PUBLIC_KEY_PATH = str(gateways.path("wechat/platform_public_key.pem"))
    settings.WECHAT_PAY_PUBLIC_KEY_ID = gateways.credentials["wechat"]["public_key_id"]
    settings.WECHAT_PAY_PLATFORM_CERT_DIR = str(tmp_path / "certs")
    reset_gateways()
    yield gateways
    reset_gateways()


@pytest.mark.parametrize("signed_under", ["cert", "pubkey"])
def test_during_the_key_switch_a_notification_under_either_serial_is_applied(user_api, both_keys, signed_under):
    payment = start_payment(user_api, "wechat")
    both_keys.control("wechat/signing", json={"mode": signed_under})
    both_keys.control(f"wechat/transactions/{payment.payment_no}/pay", json={})

    response = notify(both_keys, payment)

    assert response.status_code == 204, response.content
    assert Payment.objects.get(pk=payment.pk).status == "succeeded"


def test_during_the_key_switch_answers_under_the_certificate_serial_verify(user_api, both_keys):
    payment = start_payment(user_api, "wechat")
    both_keys.control(f"wechat/transactions/{payment.payment_no}/pay", json={})
    both_keys.control("wechat/signing", json={"mode": "cert"})

    assert payment_sync(payment_no=payment.payment_no, actor=Actor.system("t")).status == "succeeded"


def test_with_only_the_public_key_a_certificate_serial_is_refused(user_api, gateways):
    payment = start_payment(user_api, "wechat")
    gateways.control("wechat/signing", json={"mode": "cert"})
    gateways.control(f"wechat/transactions/{payment.payment_no}/pay", json={})
    before = snapshot()

    response = notify(gateways, payment)

    assert response.status_code >= 400
    row = GatewayNotification.objects.latest("id")
    assert not row.verified and "unknown Wechatpay-Serial" in row.error
    assert snapshot() == before
    with pytest.raises(GatewayUnavailable):  # an answer under a serial we do not know is refused too
        payment_sync(payment_no=payment.payment_no, actor=Actor.system("t"))


def test_the_sandbox_signing_mode_is_switchable_and_reset(gateways):
    assert gateways.control("wechat/signing", json={"mode": "cert"}) == {"mode": "cert"}
    gateways.reset()
    assert gateways.control("wechat/signing") == {"mode": "request"}


# --------------------------------------------------------------------------- 6. Alipay's GBK notifies


def test_a_gbk_notify_with_chinese_text_is_verified_in_its_charset_and_applied(user_api, gateways):
    payment = start_payment(user_api, "alipay")
    gateways.control("alipay/notify-charset", json={"charset": "gbk"})
    gateways.control(f"alipay/transactions/{payment.payment_no}/pay", json={})

    response = notify(gateways, payment)

    assert response.content == b"success", GatewayNotification.objects.latest("id").error
    assert Payment.objects.get(pk=payment.pk).status == "succeeded"
    row = GatewayNotification.objects.latest("id")
    assert b"charset=gbk" in bytes(row.body) and "%C2%FA10%BC%F51" in bytes(row.body).decode()  # 满10减1 in GBK


def test_an_undeclared_charset_cannot_verify(gateways):
    gateway = get_gateway("alipay")
    body = b"charset=koi8-r&notify_id=1&sign=AAAA&sign_type=RSA2"

    from core.errors import SignatureInvalid

    with pytest.raises(SignatureInvalid, match="charset"):
        gateway.parse_notification({}, body)


# --------------------------------------------------------------------------- 7. the order of answers


def test_a_late_processing_refund_answer_never_overwrites_the_success(user_api, gateways):
    refund = refund_world(user_api, gateways, "wechat", settle=False).refund  # processing here and there
    early = get_gateway("wechat").query_refund(refund.refund_no, payment_no=refund.payment.payment_no)
    assert early.gateway_state == "PROCESSING"
    gateways.control(f"wechat/refunds/{refund.refund_no}/settle", json={"status": "SUCCESS"})
    response = notification_from(
        gateways, "wechat", {"out_refund_no": refund.refund_no}, f"wechat/refunds/{refund.refund_no}/notify"
    )
    assert response.status_code == 204, response.content

    refund_apply_gateway_status(status=early, actor=Actor.gateway("wechat"))  # the PROCESSING word, late

    refund.refresh_from_db()
    assert (refund.status, refund.gateway_state) == ("succeeded", "SUCCESS")
    assert refund.gateway_answers[-1]["state"] == "processing"  # kept in the history, not as the state


def test_a_late_unpaid_query_answer_never_overwrites_the_payment(user_api, gateways):
    payment = start_payment(user_api, "wechat")
    unpaid = get_gateway("wechat").query(payment.payment_no)  # NOTPAY, read before the payer paid
    gateways.control(f"wechat/transactions/{payment.payment_no}/pay", json={})
    assert notify(gateways, payment).status_code == 204

    payment_apply_trade_status(trade=unpaid, actor=Actor.system("late"))

    payment.refresh_from_db()
    assert (payment.status, payment.gateway_state, unpaid.gateway_state) == ("succeeded", "SUCCESS", "NOTPAY")


def test_a_late_closed_word_never_overwrites_the_success(user_api, gateways):
    refund = refund_world(user_api, gateways, "wechat", settle=False).refund
    gateways.control(f"wechat/refunds/{refund.refund_no}/settle", json={"status": "SUCCESS"})
    ref, trigger = {"out_refund_no": refund.refund_no}, f"wechat/refunds/{refund.refund_no}/notify"
    assert notification_from(gateways, "wechat", ref, trigger).status_code == 204
    gateways.fault("wechat.notify", "mutate", set={"refund_status": "CLOSED"})  # a signed, late CLOSED word

    assert notification_from(gateways, "wechat", ref, trigger).status_code == 204  # acknowledged, not recorded

    refund.refresh_from_db()
    assert (refund.status, refund.gateway_state) == ("succeeded", "SUCCESS")


# --------------------------------------------------------------------------- 9. Wallyt RSA_1_256

# PROTOCOLS C.3's reproducible string assembly, signed RSA_1_256 with a published test key (fzlee/alipay's
# app key); the signature was computed independently with ``openssl dgst -sha256 -sign`` (OpenSSL 3).
KAT_PARAMS = {
    "body": "TestPay",
    "device_info": "100",
    "mch_create_ip": "127.0.0.1",
    "mch_id": "127500000158",
    "nonce_str": "2209193392",
    "notify_url": "http://zeming.dev.swiftpass.cn/pytest/notify_suc",
    "out_trade_no": "127500000158112233001",
    "service": "pay.weixin.native.intl",
    "sign_type": "RSA_1_256",
    "total_fee": "100",
    "attach": "",  # empty values are left out of the string to sign
}
KAT_SIGNATURE = (
    "GOiUZVnqQ7ZNg0UjTm9ooUj4sfCor4rr+bXkb0orozAb5j9C049/JTC1z+xr6Cbzd+pyZRPHDpoZicX3zyHJE1x5JIV0JuhKa6tf5rXL8nWE4BzB"
    "qnxUuH8KSn+emIsHRdZLsLC8jXoyuAmQOAtvunSlJoWNV1lOaAIW6A78lpcJt+GY2wsQD3R/Q+ibUtjdZ8cexWgFCkJ1Y9NlT6C1sFAzuV4UQDp/"
    "MEVaQkYbFU3chmbxi/HdjROkStbQOcP59yr85/iqoQfpzgRR4VhvQXqvgsCUQCYozeQgw/gqoIcekdvGTcLzknXgQWZpFk/IgBT0l4pbyNVwLQfA"
    "V56B5Q=="
)


def test_wallyt_rsa_1_256_known_answer():
    from payments.gateways.keys import load_private_key, load_public_key

    private = load_private_key((VECTORS / "fzlee_app_app_private_key.pem").read_text())  # PKCS#1 PEM
    public = load_public_key((VECTORS / "fzlee_app_app_public_key.pem").read_text())

    assert rsa_string_to_sign(KAT_PARAMS).endswith("sign_type=RSA_1_256&total_fee=100")
    assert "attach" not in rsa_string_to_sign(KAT_PARAMS) and "key=" not in rsa_string_to_sign(KAT_PARAMS)
    assert rsa_sign(KAT_PARAMS, private_key=private) == KAT_SIGNATURE
    assert rsa_verify({**KAT_PARAMS, "sign": KAT_SIGNATURE}, public_key=public)
    assert not rsa_verify({**KAT_PARAMS, "total_fee": "101", "sign": KAT_SIGNATURE}, public_key=public)
    if shutil.which("openssl"):  # the same answer from an independent implementation
        openssl = subprocess.run(
            ["openssl", "dgst", "-sha256", "-sign", str(VECTORS / "fzlee_app_app_private_key.pem")],
            input=rsa_string_to_sign(KAT_PARAMS).encode(),
            capture_output=True,
            check=True,
        )
        assert base64.b64encode(openssl.stdout).decode() == KAT_SIGNATURE


@pytest.fixture
def wallyt_rsa(gateways, settings):
    settings.WALLYT_SIGN_TYPE = "RSA_1_256"  # the sandbox's generated RSA pairs fill the key paths
    reset_gateways()
    yield gateways
    reset_gateways()


def test_wallyt_rsa_1_256_pays_end_to_end(user_api, wallyt_rsa):
    payment = start_payment(user_api, "wallyt")  # the sandbox verified our RSA signature to answer
    assert get_gateway("wallyt").config.sign_type == "RSA_1_256"
    wallyt_rsa.control(f"wallyt/transactions/{payment.payment_no}/pay", json={})

    assert notify(wallyt_rsa, payment).content == b"success"
    assert Payment.objects.get(pk=payment.pk).status == "succeeded"
    assert get_gateway("wallyt").query(payment.payment_no).gateway_state == "SUCCESS"


def test_with_rsa_configured_an_md5_signed_notification_is_refused(user_api, wallyt_rsa):
    payment = start_payment(user_api, "wallyt")
    wallyt_rsa.control(f"wallyt/transactions/{payment.payment_no}/pay", json={})
    wallyt_rsa.fault("wallyt.notify", "mutate", set={"sign_type": "MD5"})  # signed with the MD5 key instead
    before = snapshot()

    assert notify(wallyt_rsa, payment).content == b"fail"
    assert "signature" in GatewayNotification.objects.latest("id").error
    assert snapshot() == before


# --------------------------------------------------------------------------- 10. API docs in production


@pytest.mark.parametrize("path", ["/api/schema/", "/api/docs/"])
def test_api_docs_are_staff_only_unless_public(db, settings, path):
    from core.tests.factories import StaffFactory

    settings.API_DOCS_PUBLIC = False
    assert Client().get(path).status_code in (401, 403)
    staff = Client()
    staff.force_login(StaffFactory())
    assert staff.get(path).status_code == 200
    settings.API_DOCS_PUBLIC = True
    assert Client().get(path).status_code == 200


def test_api_docs_default_is_closed_in_production():
    import os

    env = {**os.environ, "APP_ENV": "production", "DJANGO_SECRET_KEY": "x" * 60, "DJANGO_ALLOWED_HOSTS": "a"}
    env.pop("API_DOCS_PUBLIC", None)
    code = "from django.conf import settings; print(settings.API_DOCS_PUBLIC)"
    out = subprocess.run(
        [sys.executable, "-c", f"import django; django.setup(); {code}"],
        env={**env, "DJANGO_SETTINGS_MODULE": "config.settings"},
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip() == "False"


# --------------------------------------------------------------------------- the README's table


def test_the_readme_table_is_the_check_tables():
    from payments.gateways import alipay, wallyt, wechat

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()

    assert trust.markdown_table([wechat.CHECKS, alipay.CHECKS, wallyt.CHECKS]) in readme


# --------------------------------------------------------------------------- found by trying it as an outsider


@settings(max_examples=200, deadline=None)
@given(
    this=st.integers(1, 10_000),
    others=st.lists(st.integers(1, 10_000), max_size=6),
    order=st.randoms(use_true_random=False),
)
def test_every_cumulative_total_a_gateway_can_report_is_allowed(this, others, order):
    """Whatever order the gateway executes a trade's refunds in, the cumulative refunded amount it
    reports with this refund is allowed; anything below this refund alone never is."""
    allowed = trust.cumulative_refund_totals(this_fen=this, others_fen=others)
    executed = [this, *others]
    order.shuffle(executed)
    for done in range(executed.index(this) + 1, len(executed) + 1):
        assert sum(executed[:done]) in allowed
    assert not any(total < this for total in allowed)


def test_an_alipay_refund_query_without_any_amount_settles_nothing(user_api, gateways):
    refund = refund_world(user_api, gateways, "alipay").refund  # refunded at Alipay, processing here
    gateways.fault("alipay.refund_query", "mutate", drop=["refund_amount", "total_amount"])
    before = snapshot()

    with pytest.raises(FieldMismatch, match="absent"):
        refund_sync(refund_id=refund.pk, actor=Actor.system("t"))

    assert snapshot() == before
    assert refund_sync(refund_id=refund.pk, actor=Actor.system("t")).status == "succeeded"  # the real answer


def test_a_wallyt_message_without_its_sign_type_is_refused(user_api, gateways):
    payment = start_payment(user_api, "wallyt")
    gateways.control(f"wallyt/transactions/{payment.payment_no}/pay", json={})
    gateways.fault("wallyt.notify", "mutate", drop=["sign_type"])

    assert notify(gateways, payment).content == b"fail"
    assert Payment.objects.get(pk=payment.pk).status == "pending"
