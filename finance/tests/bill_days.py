"""Test records onto a day whose bill is published: a day's bill exists from the next day on
(``finance.bills.bill_date_check``), so a test that makes its payments now and reconciles a bill
moves them, at the sandbox and here, onto yesterday first."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

from django.utils import timezone

from finance.bills import SHANGHAI, _channels
from payments.models import Payment
from refunds.models import Refund


def onto_yesterday(sandbox, gateways: Iterable[str] = ("wechat", "alipay", "wallyt")) -> dt.date:
    """Re-date every successful trade and refund of ``gateways`` at the sandbox
    (``/control/{gateway}/{transactions|refunds}/{no}/booked``) and our succeeded payments and refunds
    of them to 12:00 yesterday (Asia/Shanghai). Returns yesterday, the latest bill day."""
    day = (timezone.now().astimezone(SHANGHAI) - dt.timedelta(days=1)).date()
    when = dt.datetime.combine(day, dt.time(12), SHANGHAI)
    body = {"success_time": when.isoformat()}
    channels: list[str] = []
    for gateway in gateways:
        channels += _channels(gateway)
        for trade in sandbox.control(f"{gateway}/transactions")["transactions"]:
            if trade["state"] == "SUCCESS":
                sandbox.control(f"{gateway}/transactions/{trade['out_trade_no']}/booked", json=body)
        for refund in sandbox.control(f"{gateway}/refunds")["refunds"]:
            if refund["status"] == "SUCCESS":
                sandbox.control(f"{gateway}/refunds/{refund['out_refund_no']}/booked", json=body)
    Payment.objects.filter(status="succeeded", channel__in=channels).update(paid_at=when)
    Refund.objects.filter(status="succeeded", payment__channel__in=channels).update(succeeded_at=when)
    return day
