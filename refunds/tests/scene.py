"""A working day in the back office, made through the real flows (the API, the sandbox over HTTP,
the services): what the browser tests of the back office's screens look at.

- ``wechat``: a rental paid by WeChat Pay (QR code); support asks for a full refund, finance
  approves, WeChat settles it and notifies us (REFUND.SUCCESS);
- ``alipay``: paid by Alipay (computer), a partial refund Alipay settles within its answer;
- ``wallyt``: paid through Wallyt (its notification is XML with a ``<sign>``), a partial refund;
- ``wallet``: paid from the wallet (topped up by WeChat Pay first), refunded to the wallet;
- ``rejected``: paid by WeChat Pay (H5), a refund finance rejected;
- the day's bills reconciled (its gateway records moved onto yesterday, the latest published bill
  day): Wallyt's leaves a payment out (a payment missing from the bill and
  the day totals that differ), WeChat's summary states one fen more in fees than its rows.

Long on purpose: a WeChat sign-in's user name (``wx_...``) and the 26-character numbers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import requests
from django.utils import timezone
from rest_framework.test import APIClient

from core.audit import Actor
from core.jwt_auth import token_for
from core.tests.factories import UserFactory
from finance.bills import bill_reconcile
from finance.tests.bill_days import onto_yesterday
from payments.models import Payment
from payments.services import payment_sync
from payments.tests.flows import pay, rental
from refunds.models import Refund
from refunds.services import refund_approve, refund_reject, refund_request, refund_submit, refund_sync
from refunds.tests.test_admin_helpers import staff_in

WX_NAME = "wx_oDuPjL6EVkjVh_zsRm3abQ9tY"
SYSTEM = Actor.system("scene")


@dataclass
class Scene:
    support: Any
    finance: Any
    customer: Any
    refunds: dict[str, Refund]
    payments: dict[str, str]  # name -> payment_no

    def refund(self, name: str) -> Refund:
        return Refund.objects.select_related("order", "payment").get(pk=self.refunds[name].pk)


def _client(user) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token_for(user)}")
    client.user = user
    return client


def _paid(api: APIClient, sandbox, channel: str, *, notified: bool, **extra) -> str:
    """A payment the payer completes in the sandbox; with ``notified`` the gateway's notification
    applies it (it reaches the live server), otherwise a query does."""
    order = rental(api)
    started = pay(api, order["order_no"], channel, **extra)
    assert started.status_code == 201, started.content
    payment_no = started.json()["payment_no"]
    if channel == "wallet":
        return payment_no
    if channel.startswith("alipay"):
        requests.get(started.json()["pay_url"], timeout=10)  # the payer opens the cashier
    gateway = channel.split("_")[0]
    sandbox.control(f"{gateway}/transactions/{payment_no}/pay", json={})
    if notified:
        sandbox.wait_for(lambda: Payment.objects.get(payment_no=payment_no).status == "succeeded", timeout=15)
    else:
        payment_sync(payment_no=payment_no, actor=SYSTEM)
    assert Payment.objects.get(payment_no=payment_no).status == "succeeded"
    return payment_no


def _topup(api: APIClient, sandbox, fen: int) -> None:
    made = api.post("/api/v1/wallet/topups/", {"amount_fen": fen}, format="json")
    assert made.status_code == 201, made.content
    started = pay(api, made.json()["order_no"], "wechat_native")
    assert started.status_code == 201, started.content
    payment_no = started.json()["payment_no"]
    sandbox.control(f"wechat/transactions/{payment_no}/pay", json={})
    payment_sync(payment_no=payment_no, actor=SYSTEM)


def _refund(payment_no: str, *, by, amount_fen: int | None, reason: str) -> Refund:
    payment = Payment.objects.select_related("order").get(payment_no=payment_no)
    return refund_request(
        order_no=payment.order.order_no, amount_fen=amount_fen, reason=reason, requested_by=by, source="staff"
    )


def _settled(sandbox, refund: Refund, *, notified: bool) -> Refund:
    refund_submit(refund_id=refund.pk)
    refund = Refund.objects.select_related("payment").get(pk=refund.pk)
    gateway = refund.payment.gateway
    if refund.status == "processing" and gateway in ("wechat", "wallyt"):
        sandbox.control(f"{gateway}/refunds/{refund.refund_no}/settle", json={"status": "SUCCESS"})
        if notified and gateway == "wechat":
            sandbox.wait_for(lambda: Refund.objects.get(pk=refund.pk).status == "succeeded", timeout=15)
        else:
            refund_sync(refund_id=refund.pk, actor=SYSTEM)
    refund = Refund.objects.get(pk=refund.pk)
    assert refund.status == "succeeded", (refund.refund_no, refund.status)
    return refund


def back_office_scene(sandbox, *, reconcile: bool = True) -> Scene:
    """The day described in the module's docstring. ``sandbox``: the gateways (``notify_to``: their
    notifications reach the live server)."""
    support = staff_in("support", username="support")
    finance = staff_in("finance", username="finance")
    customer = UserFactory(username=WX_NAME)
    api = _client(customer)
    payments = {
        "wechat": _paid(api, sandbox, "wechat_native", notified=True),
        "alipay": _paid(api, sandbox, "alipay_page", notified=False),
        "wallyt": _paid(api, sandbox, "wallyt_jsapi", notified=True, openid="o-scene-openid"),
        "rejected": _paid(api, sandbox, "wechat_h5", notified=False),
    }
    _topup(api, sandbox, 50_000)
    payments["wallet"] = _paid(api, sandbox, "wallet", notified=False)

    refunds: dict[str, Refund] = {}
    # support asks, finance approves, the gateway settles
    refunds["wechat"] = _refund(payments["wechat"], by=support, amount_fen=None, reason="Door would not open")
    refund_approve(refund_id=refunds["wechat"].pk, approver=finance, note="Door fault confirmed in the locker log")
    refunds["wechat"] = _settled(sandbox, refunds["wechat"], notified=True)
    for name, amount in (("alipay", 250), ("wallyt", 300), ("wallet", 400)):
        refunds[name] = _refund(payments[name], by=support, amount_fen=amount, reason="Did not use it all")
        refund_approve(refund_id=refunds[name].pk, approver=finance, note="Checked with the customer log")
        refunds[name] = _settled(sandbox, refunds[name], notified=False)
    refunds["rejected"] = _refund(payments["rejected"], by=support, amount_fen=250, reason="Changed my mind")
    refunds["rejected"] = refund_reject(refund_id=refunds["rejected"].pk, approver=finance, note="Used in full")

    if reconcile:
        sandbox.control("wallyt/bills/adjust", json={"omit": [payments["wallyt"]]})
        sandbox.control("wechat/bills/adjust", json={"totals_delta_fen": {"fees": 1}})
        day = onto_yesterday(sandbox)  # today's bills are not published yet: the day is yesterday
        bill_reconcile(bill_date=day, now=timezone.now())
    return Scene(support=support, finance=finance, customer=customer, refunds=refunds, payments=payments)
