"""A rental paid after use (WeChat Pay Score) as the customer sees it: the pages and the order API say what
WeChat billed or collected, never the order's booked price (an outside tester saw "Paid ¥10.00 · WeChat Pay
Score" where WeChat had collected ¥5.00, and "Paid" before anything was charged)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import Client

from core.money import format_yuan
from orders.models import Order
from orders.services import order_open_door
from payments.tests.test_payscore_flow import _confirmed, _status
from refunds.models import Refund
from refunds.services import refund_approve, refund_request
from refunds.tests.test_admin_helpers import staff_in

pytestmark = pytest.mark.django_db(transaction=True)


def _pages(web: Client, order_no: str) -> tuple[str, str]:
    result = web.get(f"/pay/result/?order={order_no}")
    orders = web.get("/orders/")
    assert result.status_code == 200 and orders.status_code == 200
    return result.content.decode(), orders.content.decode()


def _api(user_api, order_no: str) -> dict:
    response = user_api.get(f"/api/v1/orders/{order_no}/")
    assert response.status_code == 200, response.content
    return response.json()


def test_a_pay_score_rental_shows_what_wechat_billed_and_collected(user_api, notify_to, celery_eager):
    order, so = _confirmed(user_api, notify_to)
    web = Client()
    web.force_login(user_api.user)
    booked = format_yuan(order["amount_fen"])

    # confirmed, not picked up: nothing charged yet, at most the risk fund
    result, orders = _pages(web, order["order_no"])
    running = f"Pay after use with WeChat Pay Score: billed when you pick up (at most {format_yuan(so.risk_fund_fen)})"
    assert running in result and running in orders
    assert "Payment complete" not in result and f"Paid {booked}" not in result
    detail = _api(user_api, order["order_no"])
    assert (detail["paid_fen"], detail["billed_fen"]) == (0, None)

    # picked up 5 h 20 min later; WeChat cannot collect yet (USER_PAYING)
    notify_to.control(f"wechat/payscore/{so.out_order_no}/collect", json={"outcome": "unpaid"})
    order_open_door(
        order_no=order["order_no"], user=user_api.user, now=so.confirmed_at + timedelta(hours=5, minutes=20)
    )
    so = _status(notify_to, so.out_order_no, "completed")
    total = format_yuan(so.total_fen)
    assert so.total_fen != order["amount_fen"]  # else the booked price would pass for the billed one
    result, orders = _pages(web, order["order_no"])
    assert f"{total} billed, WeChat is collecting" in result and f"{total} billed, WeChat is collecting" in orders
    assert "Paid ¥" not in result
    detail = _api(user_api, order["order_no"])
    assert (detail["paid_fen"], detail["billed_fen"]) == (0, so.total_fen)

    # collected
    notify_to.control(f"wechat/payscore/{so.out_order_no}/collect", json={"outcome": "paid"})
    so = _status(notify_to, so.out_order_no, "paid")
    result, orders = _pages(web, order["order_no"])
    assert f"Paid {total} (collected by WeChat Pay Score)" in result and f"Paid {booked}" not in result
    assert f"Paid {total} (collected by WeChat Pay Score)" in orders
    detail = _api(user_api, order["order_no"])
    assert (detail["paid_fen"], detail["billed_fen"]) == (so.paid_fen, so.total_fen)

    # a ¥2 refund counts against what WeChat collected
    refund = refund_request(
        order_no=order["order_no"],
        amount_fen=200,
        reason="door stuck",
        requested_by=staff_in("support"),
        source="staff",
    )
    refund_approve(refund_id=refund.pk, approver=staff_in("finance"))
    notify_to.wait_for(lambda: Refund.objects.get(pk=refund.pk).status == "processing", timeout=15)
    notify_to.control(f"wechat/refunds/{refund.refund_no}/settle", json={"status": "SUCCESS"})
    notify_to.wait_for(lambda: Refund.objects.get(pk=refund.pk).status == "succeeded", timeout=15)
    assert Order.objects.get(order_no=order["order_no"]).status == "partially_refunded"
    result, orders = _pages(web, order["order_no"])
    assert f"{format_yuan(200)} refunded of {total}" in result and f"{format_yuan(200)} refunded of {total}" in orders
