"""The inbox (``payments.inbox``) and its HTTP edge (``payments.webhooks``): what is refused before a row is
written, junk kept bounded, flooding senders, the crash record, and the hooks refunds registers."""

from __future__ import annotations

import hashlib

import pytest
from django.test import Client

from core.audit import Actor
from core.errors import DomainError
from payments import hooks
from payments.gateways.base import RefundState, RefundStatus
from payments.inbox import UNVERIFIED_KEEP_BYTES, notification_receive, unverified_senders
from payments.models import GatewayNotification, Payment
from payments.tests.test_trust_boundary import notification_from, start_payment
from payments.tests.wechat_notify import WeChatNotifier
from refunds.services import refund_apply_gateway_status
from refunds.tasks import refund_flagged_payment_send

pytestmark = pytest.mark.django_db


def notify(sandbox, payment: Payment):
    trigger = f"{payment.gateway}/transactions/{payment.payment_no}/notify"
    return notification_from(sandbox, payment.gateway, {"out_trade_no": payment.payment_no}, trigger)


def test_an_unknown_notification_name_is_404_in_the_error_shape_and_stores_nothing(db):
    response = Client().post("/api/v1/payments/notify/" + "x" * 41 + "/", data=b"{}", content_type="application/json")

    assert response.status_code == 404 and response.json()["error"]["code"] == "not_found"
    assert not GatewayNotification.objects.exists()


@pytest.mark.parametrize("gateway", ["wechat", "alipay", "wallyt"])
def test_an_oversized_body_is_refused_before_a_row_is_written(db, gateway):
    response = Client().post(f"/api/v1/payments/notify/{gateway}/", data=b"x" * 1024 * 1024, content_type="text/plain")

    assert response.status_code == 413 and response.json()["error"]["code"] == "body_too_large"
    assert not GatewayNotification.objects.exists()


def test_junk_is_kept_bounded_and_a_flooding_sender_is_answered_429_without_rows(gateways, settings):
    settings.NOTIFY_UNVERIFIED_PER_MINUTE = 3
    unverified_senders.__init__()
    junk = b"<xml><a>" + b"j" * 20_000 + b"</a></xml>"

    answers = [
        Client(REMOTE_ADDR="203.0.113.9").post("/api/v1/payments/notify/wallyt/", data=junk, content_type="text/xml")
        for _ in range(5)
    ]

    assert [a.status_code for a in answers[:3]] == [401] * 3 and [a.status_code for a in answers[3:]] == [429] * 2
    assert answers[-1]["Retry-After"] == "60" and answers[-1].json()["error"]["code"] == "throttled"
    rows = list(GatewayNotification.objects.all())
    assert len(rows) == 3 and all(not r.verified and r.error for r in rows)
    assert all(len(bytes(r.body)) == UNVERIFIED_KEEP_BYTES and r.body_size == len(junk) for r in rows)

    assert rows[0].body_sha256 == hashlib.sha256(junk).hexdigest()


def test_a_flooding_sender_does_not_hold_up_a_gateway_behind_the_same_address(user_api, gateways, settings):
    """Behind a proxy every request has its address: junk over the limit is refused unstored, the
    gateway's signed notifications from that same address are still stored and applied."""
    settings.NOTIFY_UNVERIFIED_PER_MINUTE = 1
    unverified_senders.__init__()
    for _ in range(3):  # the default test client address, the one the notification below comes from
        Client().post("/api/v1/payments/notify/wechat/", data=b"{}", content_type="application/json")
    assert GatewayNotification.objects.count() == 1
    payment = start_payment(user_api, "wechat")
    gateways.control(f"wechat/transactions/{payment.payment_no}/pay", json={})

    assert notify(gateways, payment).status_code == 204  # verified before storing, then applied
    assert Payment.objects.get(pk=payment.pk).status == "succeeded"
    assert GatewayNotification.objects.count() == 2


def test_huge_headers_and_bodies_without_a_length_are_refused_before_a_row(db):
    many = {f"HTTP_X_JUNK_{i}": "j" * 8000 for i in range(3)}
    headers = Client().post("/api/v1/payments/notify/wallyt/", data=b"junk", content_type="text/xml", **many)
    chunked = Client().generic("POST", "/api/v1/payments/notify/wallyt/", b"", CONTENT_TYPE="text/xml")

    assert headers.status_code == 431 and headers.json()["error"]["code"] == "headers_too_large"
    assert chunked.status_code in (411, 400) or chunked.json()["error"]["code"] == "length_required"
    assert not GatewayNotification.objects.exists()


# --------------------------------------------------------------------------- the crash record and the hooks


def test_a_crash_is_recorded_with_its_traceback(user_api, gateways, monkeypatch):
    payment = start_payment(user_api, "wechat")
    notifier = WeChatNotifier(gateways)
    headers, body = notifier.build(notifier.transaction(payment), notify_id="EV-TRACEBACK")

    def crash(**kwargs):
        raise RuntimeError("boom in fulfilment")

    monkeypatch.setattr("payments.services.order_mark_paid", crash)
    with pytest.raises(RuntimeError):
        notifier.post(Client(), headers, body)

    error = GatewayNotification.objects.get(reference=payment.payment_no).error
    assert error.startswith("RuntimeError: boom in fulfilment")
    assert "Traceback (most recent call last)" in error and "in crash" in error  # where it broke


def test_the_hooks_refunds_registers_are_its_functions():
    assert hooks.refund_status_handler() is refund_apply_gateway_status
    assert hooks.flagged_payment_refund() is refund_flagged_payment_send


def test_a_refund_word_without_a_registered_handler_is_refused_clearly_and_kept(gateways, monkeypatch):
    monkeypatch.setattr(hooks, "_refund_status_handler", None)
    with pytest.raises(DomainError) as raised:
        hooks.refund_status_handler()(
            status=RefundStatus(gateway="wechat", refund_no="RF1", state=RefundState.SUCCEEDED, source="notify"),
            actor=Actor.system("test"),
        )
    assert raised.value.code == "refund_unhandled"
    monkeypatch.setattr(hooks, "_flagged_payment_refund", None)
    with pytest.raises(DomainError, match="flagged payments"):
        hooks.flagged_payment_refund()


def test_without_a_refund_handler_a_refund_notification_is_answered_fail_and_recorded(user_api, gateways, monkeypatch):
    payment = start_payment(user_api, "wechat")
    notifier = WeChatNotifier(gateways)
    resource = {
        "mchid": notifier.creds["mchid"],
        "out_trade_no": payment.payment_no,
        "transaction_id": f"4200{payment.pk:020d}",
        "out_refund_no": "RFNOHANDLER0000000001",
        "refund_id": "50000000000000000000001",
        "refund_status": "SUCCESS",
        "success_time": "2026-11-22T10:00:00+08:00",
        "user_received_account": "x",
        "amount": {"total": payment.amount_fen, "refund": 1, "payer_total": payment.amount_fen, "payer_refund": 1},
    }
    headers, body = notifier.build(resource, event_type="REFUND.SUCCESS", original_type="refund")
    monkeypatch.setattr(hooks, "_refund_status_handler", None)

    reply = notification_receive(gateway_name="wechat", headers=headers, body=body, remote_addr="127.0.0.1")

    assert reply.status >= 400  # the gateway retries once refunds is there
    row = GatewayNotification.objects.latest("id")
    assert row.verified and row.error.startswith("refund_unhandled") and row.event_id is None
