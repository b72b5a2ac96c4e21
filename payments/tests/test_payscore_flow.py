"""Pay after use with WeChat Pay Score, end to end: our API -> the real wechatpayv3 SDK -> the sandbox over
HTTP -> its signed, encrypted notifications -> our webhook. The rental's clock is a test clock (``now``)."""

from __future__ import annotations

import re
import secrets
import string
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from core.audit import Actor
from core.money import format_yuan
from lockers.models import Compartment, PickupCode
from lockers.pricing import price_compute
from orders.models import Order
from orders.selectors import rental_clock
from orders.services import order_open_door
from payments.gateways.trust import FieldMismatch
from payments.gateways.wechat_payscore import PAYSCORE_CHECKS
from payments.models import GatewayNotification, ServiceOrder, ServiceOrderEvent
from payments.payscore import payscore_sync, service_orders_unpaid
from payments.reconciliation import reconcile_payments
from payments.tests.flows import pay, rental
from payments.tests.wechat_notify import WeChatNotifier

pytestmark = pytest.mark.django_db(transaction=True)


def _plan():
    from lockers.models import PricePlan

    plan = PricePlan.objects.get(size="M", is_active=True)
    return {"price_per_hour_fen": plan.price_per_hour_fen, "min_hours": plan.min_hours, "cap_fen": plan.cap_fen}


def _start(user_api) -> tuple[dict, dict]:
    order = rental(user_api)
    started = pay(user_api, order["order_no"], "wechat_payscore")
    assert started.status_code == 201, started.content
    return order, started.json()


def _status(sandbox, no: str, status: str, timeout: float = 15) -> ServiceOrder:
    sandbox.wait_for(lambda: ServiceOrder.objects.get(out_order_no=no).status == status, timeout=timeout)
    return ServiceOrder.objects.get(out_order_no=no)


def _confirmed(user_api, sandbox) -> tuple[dict, ServiceOrder]:
    order, started = _start(user_api)
    sandbox.control(f"wechat/payscore/{started['out_order_no']}/confirm", json={"openid": "o-payscore-1"})
    return order, _status(sandbox, started["out_order_no"], "confirmed")


def test_create_confirm_pickup_complete_paid(user_api, notify_to, celery_eager):
    # given a rental started without paying
    order, started = _start(user_api)
    no = started["out_order_no"]
    assert started["status"] == "created" and started["channel"] == "wechat_payscore"
    assert started["order_status"] == "pending_payment" and started["total_fen"] is None
    confirm = started["confirm"]
    assert confirm["businessType"] == "wxpayScoreUse"
    assert set(confirm["extraData"]) == {"mch_id", "package", "timestamp", "nonce_str", "sign_type", "sign"}
    assert confirm["extraData"]["sign_type"] == "HMAC-SHA256"
    at_wechat = notify_to.control(f"wechat/payscore/{no}")
    assert at_wechat["state"] == "CREATED" and at_wechat["package"] == confirm["extraData"]["package"]
    assert at_wechat["risk_fund"]["amount"] == started["risk_fund_fen"]
    assert Compartment.objects.get(orders__order_no=order["order_no"]).status == "reserved"

    # when the user confirms in WeChat (PAYSCORE.USER_CONFIRM reaches our webhook)
    notify_to.control(f"wechat/payscore/{no}/confirm", json={"openid": "o-payscore-1"})
    so = _status(notify_to, no, "confirmed")

    # then the rental runs: order paid (after use), compartment occupied, pickup code valid as long as it bills
    db_order = Order.objects.get(order_no=order["order_no"])
    assert db_order.status == "paid" and so.payer_openid == "o-payscore-1"
    assert Compartment.objects.get(pk=db_order.compartment_id).status == "occupied"
    code = PickupCode.objects.get(reference=db_order.order_no, status="active")
    assert code.valid_until >= so.confirmed_at + timedelta(hours=72) - timedelta(seconds=1)

    # when the customer picks up 5 h 20 min later (a test clock)
    picked_up = so.confirmed_at + timedelta(hours=5, minutes=20)
    order_open_door(order_no=db_order.order_no, user=user_api.user, now=picked_up)

    # then the order completes and the service order is completed with 6 started hours, then collected
    so = _status(notify_to, no, "paid")
    plan = _plan()
    assert so.total_fen == price_compute(**plan, hours=6)[1] == so.paid_fen
    assert so.ended_at == picked_up and so.gateway_trade_no and so.paid_at
    assert Order.objects.get(pk=db_order.pk).status == "completed"
    assert Compartment.objects.get(pk=db_order.compartment_id).status == "free"
    at_wechat = notify_to.control(f"wechat/payscore/{no}")
    assert at_wechat["state"] == "DONE" and at_wechat["total_amount"] == so.total_fen
    assert at_wechat["collection"]["state"] == "USER_PAID"
    actions = list(ServiceOrderEvent.objects.filter(service_order=so).order_by("id").values_list("action", flat=True))
    # the completion's answer and the USER_PAID notification race: "complete" is there unless the latter won
    assert actions in (["create", "confirm", "bill", "complete", "paid"], ["create", "confirm", "bill", "paid"])
    inbox = GatewayNotification.objects.filter(reference=no).order_by("id")
    assert [row.event_type for row in inbox] == ["PAYSCORE.USER_CONFIRM", "PAYSCORE.USER_PAID"]
    assert all(row.verified and row.processed_at and not row.error for row in inbox)


def test_declined_order_is_cancelled_at_wechat_when_it_expires(user_api, gateways):
    order, started = _start(user_api)
    no = started["out_order_no"]
    gateways.control(f"wechat/payscore/{no}/decline", json={})
    db_order = Order.objects.get(order_no=order["order_no"])

    # the order's expiry passes (test clock): reconciliation cancels the service order at WeChat first
    report = reconcile_payments(now=db_order.expires_at + timedelta(seconds=1))

    assert report["service_orders"] == 1 and report["service_order_errors"] == 0
    assert gateways.control(f"wechat/payscore/{no}")["state"] == "REVOKED"
    assert ServiceOrder.objects.get(out_order_no=no).status == "cancelled"
    db_order.refresh_from_db()
    assert db_order.status == "cancelled"
    assert Compartment.objects.get(pk=db_order.compartment_id).status == "free"


def test_expired_at_wechat_cancels_the_order(user_api, gateways):
    order, started = _start(user_api)
    gateways.control(f"wechat/payscore/{started['out_order_no']}/expire", json={})
    so = payscore_sync(out_order_no=started["out_order_no"], actor=Actor.system("test"))
    assert so.status == "expired" and Order.objects.get(order_no=order["order_no"]).status == "cancelled"


def test_user_cancels_before_confirming(user_api, gateways):
    order, started = _start(user_api)
    response = user_api.post(
        f"/api/v1/orders/{order['order_no']}/cancel/", {"reason": "changed my mind"}, format="json"
    )
    assert response.status_code == 200, response.content
    assert gateways.control(f"wechat/payscore/{started['out_order_no']}")["state"] == "REVOKED"
    assert ServiceOrder.objects.get(out_order_no=started["out_order_no"]).status == "cancelled"
    assert Order.objects.get(order_no=order["order_no"]).status == "cancelled"


def test_no_other_payment_while_a_service_order_waits(user_api, gateways):
    order, _ = _start(user_api)
    response = pay(user_api, order["order_no"], "wechat_native")
    assert response.status_code == 409 and response.json()["error"]["code"] == "payment_in_progress"


def test_unpaid_after_completion_is_shown_to_finance(user_api, notify_to, celery_eager, admin_client):
    order, so = _confirmed(user_api, notify_to)
    notify_to.control(f"wechat/payscore/{so.out_order_no}/collect", json={"outcome": "unpaid"})
    order_open_door(order_no=order["order_no"], user=user_api.user, now=so.confirmed_at + timedelta(minutes=30))

    so = _status(notify_to, so.out_order_no, "completed")
    at_wechat = notify_to.control(f"wechat/payscore/{so.out_order_no}")
    assert at_wechat["state"] == "DOING" and at_wechat["state_description"] == "MCH_COMPLETE"
    assert not notify_to.notifications(out_order_no=so.out_order_no, event="PAYSCORE.USER_PAID")
    assert so.paid_fen == 0 and so.total_fen == price_compute(**_plan(), hours=1)[1]

    # a day later it is listed for finance, in admin too
    later = timezone.now() + timedelta(days=1, minutes=1)
    assert [x.out_order_no for x in service_orders_unpaid(now=later)] == [so.out_order_no]
    assert service_orders_unpaid(now=timezone.now()) == []
    ServiceOrder.objects.filter(pk=so.pk).update(completed_at=so.completed_at - timedelta(days=2))
    page = admin_client.get("/admin/payments/serviceorder/?collection=unpaid")
    assert page.status_code == 200 and so.out_order_no in page.content.decode()
    headers = re.findall(r'<th scope="col"[^>]*>.*?<a [^>]*>([^<]+)</a>', page.content.decode(), re.S)
    assert {"Collected", "Collected at"} <= set(headers) and "Paid" not in headers  # an amount, then a time
    assert format_yuan(so.total_fen) in page.content.decode()  # in yuan, not fen

    # when WeChat finally collects, it is paid
    notify_to.control(f"wechat/payscore/{so.out_order_no}/collect", json={"outcome": "paid"})
    assert _status(notify_to, so.out_order_no, "paid").paid_fen == so.total_fen


def _digits(n: int) -> str:
    return "".join(secrets.choice(string.digits) for _ in range(n))


# Each checked field of a service-order word (PAYSCORE_CHECKS) -> its wire path and a foreign value. The
# sandbox's `mutate` fault changes it *before* signing and encrypting: a validly signed message, not ours.
MUTATIONS = {
    "out_order_no": ("out_order_no", lambda so: "PS" + secrets.token_hex(10).upper()),
    "service_id": ("service_id", lambda so: "3" + _digits(31)),
    "app_id": ("appid", lambda so: "wx" + secrets.token_hex(8)),
    "merchant_id": ("mchid", lambda so: "18" + _digits(8)),
    "risk_fund_fen": ("risk_fund.amount", lambda so: so.risk_fund_fen + 1 + secrets.randbelow(10**6)),
    "total_fen": ("total_amount", lambda so: 1 + secrets.randbelow(so.risk_fund_fen)),
    "paid_fen": ("collection.paid_amount", lambda so: 1 + secrets.randbelow(10**6)),
}
NOT_ON_THE_WIRE = {"gateway"}  # the adapter that read the word


def test_every_payscore_check_has_a_mutation():
    assert set(PAYSCORE_CHECKS.fields("trade")) - NOT_ON_THE_WIRE == set(MUTATIONS)


def _unchanged(so: ServiceOrder, order: dict) -> None:
    assert ServiceOrder.objects.get(pk=so.pk).status == "created"
    db_order = Order.objects.get(order_no=order["order_no"])
    assert db_order.status == "pending_payment"
    assert Compartment.objects.get(pk=db_order.compartment_id).status == "reserved"
    assert not PickupCode.objects.filter(reference=db_order.order_no).exists()


@pytest.mark.parametrize("field", sorted(MUTATIONS))
def test_a_query_answer_with_one_field_changed_is_refused(user_api, gateways, field):
    order, started = _start(user_api)
    so = ServiceOrder.objects.get(out_order_no=started["out_order_no"])
    gateways.control(f"wechat/payscore/{so.out_order_no}/confirm", json={})  # its notification goes nowhere
    path, value = MUTATIONS[field]
    gateways.control("faults", json={"target": "wechat.payscore", "kind": "mutate", "set": {path: value(so)}})

    with pytest.raises(FieldMismatch) as refused:
        payscore_sync(out_order_no=so.out_order_no, actor=Actor.system("test"))

    assert refused.value.check.field == field
    _unchanged(so, order)
    assert ServiceOrderEvent.objects.filter(service_order=so, action="refused").count() == 1


@pytest.mark.parametrize("field", sorted(set(MUTATIONS) - {"out_order_no"}))  # a notification names its order
def test_a_notification_with_one_field_changed_is_refused(user_api, notify_to, field):
    order, started = _start(user_api)
    so = ServiceOrder.objects.get(out_order_no=started["out_order_no"])
    path, value = MUTATIONS[field]
    notify_to.control("faults", json={"target": "wechat.notify", "kind": "mutate", "set": {path: value(so)}})

    notify_to.control(f"wechat/payscore/{so.out_order_no}/confirm", json={})

    row = notify_to.wait_for(lambda: GatewayNotification.objects.filter(reference=so.out_order_no).first(), timeout=15)
    assert row.verified and row.error.startswith("field_mismatch") and row.event_id is None
    wire = next(c.wire for c in PAYSCORE_CHECKS.trade if c.field == field)
    assert f"{wire} is not ours" in row.error
    _unchanged(so, order)


def test_a_genuine_confirmation_built_the_same_way_is_applied(user_api, gateways):
    """The refusals' control: a confirmation we build with the sandbox's keys, every field ours, is applied."""
    _, started = _start(user_api)
    creds = gateways.credentials["wechat"]
    plaintext = {
        "appid": creds["appid"],
        "mchid": creds["mchid"],
        "service_id": creds["payscore_service_id"],
        "out_order_no": started["out_order_no"],
        "state": "DOING",
        "state_description": "USER_CONFIRM",
        "risk_fund": {"name": "ESTIMATE_ORDER_COST", "amount": started["risk_fund_fen"]},
    }
    notifier = WeChatNotifier(gateways)
    headers, body = notifier.build(plaintext, event_type="PAYSCORE.USER_CONFIRM", original_type="payscore")
    assert notifier.post(Client(), headers, body).status_code == 204
    assert ServiceOrder.objects.get(out_order_no=started["out_order_no"]).status == "confirmed"


@pytest.mark.django_db
def test_readme_shows_the_payscore_checks():
    from pathlib import Path

    from payments.gateways import trust
    from payments.gateways.wechat_payscore import PAYSCORE_CHECKS

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    assert trust.markdown_table([PAYSCORE_CHECKS]) in readme


def test_reconciliation_bills_a_rental_whose_task_was_lost(user_api, gateways):
    """No eager Celery: the bill task after pickup is never run. Reconciliation bills the rental, completes the
    service order at WeChat and, with its collection (notification nowhere), syncs it to paid."""
    order, so = _confirmed_by_sync(user_api, gateways)
    picked_up = so.confirmed_at + timedelta(hours=2, minutes=1)
    order_open_door(order_no=order["order_no"], user=user_api.user, now=picked_up)
    assert ServiceOrder.objects.get(pk=so.pk).status == "confirmed"

    report = reconcile_payments(now=picked_up + timedelta(hours=1))
    assert report["service_order_errors"] == 0
    so = ServiceOrder.objects.get(pk=so.pk)
    # 2 h booked, picked up within the pickup code's grace: the booked time, no overtime (as paying up front)
    assert so.status in ("completed", "paid") and so.total_fen == price_compute(**_plan(), hours=2)[1]
    assert gateways.control(f"wechat/payscore/{so.out_order_no}")["state"] == "DONE"
    reconcile_payments(now=picked_up + timedelta(hours=3))
    so = ServiceOrder.objects.get(pk=so.pk)
    assert so.status == "paid"
    # learnt by reconciliation, the collection is a payment as well (the one place every "paid" goes through)
    assert (so.payment.channel, so.payment.amount_fen, so.payment.status) == (
        "wechat_payscore",
        so.total_fen,
        "succeeded",
    )


def _confirmed_by_sync(user_api, sandbox) -> tuple[dict, ServiceOrder]:
    """Confirmed at WeChat, learnt by a query (the notification goes nowhere)."""
    order, started = _start(user_api)
    sandbox.control(f"wechat/payscore/{started['out_order_no']}/confirm", json={})
    so = payscore_sync(out_order_no=started["out_order_no"], actor=Actor.system("test"))
    assert so.status == "confirmed" and Order.objects.get(order_no=order["order_no"]).status == "paid"
    return order, so


@pytest.mark.parametrize(
    ("envelope", "status"),
    [({"corrupt": True}, 401), ({"serial": "PUB_KEY_ID_0000000000000000000000000000"}, 401), ({"timestamp": "1"}, 400)],
)
def test_payscore_notifications_pass_the_same_envelope_checks(user_api, gateways, envelope, status):
    """Signature, serial and time window: a Pay Score notification goes through the payment notifications' checks."""
    order, started = _start(user_api)
    creds = gateways.credentials["wechat"]
    plaintext = {
        "appid": creds["appid"],
        "mchid": creds["mchid"],
        "service_id": creds["payscore_service_id"],
        "out_order_no": started["out_order_no"],
        "state": "DOING",
        "state_description": "USER_CONFIRM",
    }
    notifier = WeChatNotifier(gateways)
    headers, body = notifier.build(plaintext, event_type="PAYSCORE.USER_CONFIRM", original_type="payscore", **envelope)
    assert notifier.post(Client(), headers, body).status_code == status
    assert ServiceOrder.objects.get(out_order_no=started["out_order_no"]).status == "created"
    assert Order.objects.get(order_no=order["order_no"]).status == "pending_payment"


def test_past_the_pickup_code_a_pay_score_rental_is_picked_up_not_asked_for_overtime(user_api, notify_to, celery_eager):
    """Its service order bills the whole time used: an overtime order as well would charge those hours twice."""
    order, so = _confirmed(user_api, notify_to)
    code = PickupCode.objects.get(reference=order["order_no"], status="active")
    late = code.valid_until + timedelta(hours=2)
    # the clock the API and the pages show says so beforehand (the same rule)
    assert rental_clock(Order.objects.get(order_no=order["order_no"]), code=code, now=late).door == "pickup"

    assert order_open_door(order_no=order["order_no"], user=user_api.user, now=late) == "pickup"

    so = _status(notify_to, so.out_order_no, "paid")
    # 2 h booked (10.00) + the cashier's overtime for the 70 h after (2 days at the 50.00 daily cap + 22 h
    # capped at 50.00): the risk fund, which caps the 74 h used
    assert so.total_fen == so.risk_fund_fen == 16_000 and so.ended_at == late
    rental_order = Order.objects.get(order_no=order["order_no"])
    assert rental_order.status == "completed" and not rental_order.overtime_orders.exists()


def test_an_abandoned_pay_score_rental_is_billed_by_its_service_order_not_by_an_overtime_order(
    user_api, notify_to, celery_eager, settings
):
    from orders.abandoned import rentals_abandon_overdue

    order, so = _confirmed(user_api, notify_to)
    rental_order = Order.objects.get(order_no=order["order_no"])
    now = rental_order.rental_ends_at + settings.ABANDONED_AFTER + timedelta(minutes=1)

    run = rentals_abandon_overdue(now=now)
    again = rentals_abandon_overdue(now=now + timedelta(hours=1))

    assert run.abandoned == [order["order_no"]] and run.owed == [] and again.owed == []
    so = _status(notify_to, so.out_order_no, "paid")
    assert so.ended_at == now and so.total_fen == so.risk_fund_fen == 16_000  # capped by the risk fund
    assert not Order.objects.get(pk=rental_order.pk).overtime_orders.exists()
