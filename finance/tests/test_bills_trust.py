"""Bill lines go through the same trust checks as every other gateway message (``CHECKS``, message
"bill"): a bill that lists our payments and refunds under another merchant's account is not ours."""

import pytest

from finance.bills import bill_reconcile, classify_line
from finance.models import BillDiscrepancy
from finance.tests.test_bills import _morning_after
from finance.tests.test_settlement import day_of_trades  # noqa: F401 - the fixture
from payments.gateways.bills import BillEntry
from payments.models import Payment

pytestmark = pytest.mark.django_db
K = BillDiscrepancy.Kind


@pytest.mark.parametrize("gateway", ["wechat", "alipay", "wallyt"])
def test_another_merchants_bill_lists_every_line_as_foreign(day_of_trades, gateways, gateway):  # noqa: F811
    day, made = day_of_trades
    foreign = "2088000000000009" if gateway == "alipay" else "1900000009"
    gateways.control(f"{gateway}/bills/adjust", json={"account": foreign})

    (run,) = bill_reconcile(bill_date=day, now=_morning_after(day), gateways=[gateway])

    found = BillDiscrepancy.objects.filter(gateway=gateway)
    billed = {*made[gateway]["payments"], made[gateway]["refund"].refund_no}
    assert run.status == "done" and {d.reference for d in found} == billed
    assert {d.kind for d in found} == {K.FOREIGN}
    gateways.control(f"{gateway}/bills/adjust", method="DELETE")


def test_a_line_without_the_merchant_id_wechat_always_sends_is_foreign(user_api, gateways):
    from payments.tests.flows import paid_order

    _, payment_no = paid_order(user_api, gateways)
    payment = Payment.objects.get(payment_no=payment_no)
    line = BillEntry(
        kind="payment",
        out_trade_no=payment_no,
        out_refund_no=None,
        amount_fen=payment.amount_fen,
        status="succeeded",
        occurred_at=payment.paid_at,
        gateway_trade_no=payment.gateway_trade_no,
        app_id=gateways.credentials["wechat"]["appid"],
    )
    ours = BillEntry(**{**line.__dict__, "merchant_id": gateways.credentials["wechat"]["mchid"]})

    assert [f.kind for f in classify_line(line, payment, gateway="wechat")] == [K.FOREIGN]
    assert classify_line(ours, payment, gateway="wechat") == []
