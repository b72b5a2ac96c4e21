"""The settlement report against the gateways' own bills: payments and refunds through the sandbox
over HTTP on every gateway, the bills (with fees) downloaded and reconciled by the real adapters,
the report's figures equal to each bill's totals, and a bill that disagrees becoming a
``total_mismatch`` discrepancy in the finance workflow."""

import csv
import datetime as dt
import io

import pytest
from django.urls import reverse
from django.utils import timezone
from openpyxl import load_workbook

from core.money import format_yuan
from finance.bills import bill_reconcile
from finance.models import BillDiscrepancy, BillLine, BillRun
from finance.settlement import settlement_report
from finance.tests.test_bills import SYSTEM, _at, _day, _morning_after, paid_at
from payments.gateways.bills import bill_totals
from payments.gateways.registry import get_gateway
from payments.models import Payment
from refunds.models import Refund
from refunds.services import refund_approve, refund_request, refund_submit, refund_sync
from refunds.tests.test_admin_helpers import staff_in
from refunds.tests.test_workflow import staff_with

pytestmark = pytest.mark.django_db
K = BillDiscrepancy.Kind
GATEWAY_CHANNELS = {"wechat": "wechat_native", "alipay": "alipay_page", "wallyt": "wallyt_jsapi"}


def _pay(user_api, sandbox, gateway: str, when: dt.datetime) -> str:
    extra = {"openid": "o-settle"} if gateway == "wallyt" else {}
    return paid_at(user_api, sandbox, when, channel=GATEWAY_CHANNELS[gateway], **extra)


def _refund(sandbox, payment_no: str, amount_fen: int, when: dt.datetime) -> Refund:
    """A partial refund settled by the gateway at ``when`` (Alipay settles at once: its time is moved)."""
    payment = Payment.objects.select_related("order").get(payment_no=payment_no)
    refund = refund_request(
        order_no=payment.order.order_no, amount_fen=amount_fen, reason="test", requested_by=payment.order.user
    )
    refund_approve(refund_id=refund.pk, approver=staff_with("refunds.approve_refund"), note="ok")
    refund_submit(refund_id=refund.pk)
    if payment.gateway == "alipay":  # settled within the refund call (fund_change=Y)
        _set_alipay_refund_time(sandbox, refund.refund_no, when)
        Refund.objects.filter(pk=refund.pk).update(succeeded_at=when)
    else:
        sandbox.control(
            f"{payment.gateway}/refunds/{refund.refund_no}/settle",
            json={"status": "SUCCESS", "success_time": when.isoformat()},
        )
        refund_sync(refund_id=refund.pk, actor=SYSTEM)
    refund = Refund.objects.get(pk=refund.pk)
    assert refund.status == "succeeded", refund.status
    return refund


def _set_alipay_refund_time(sandbox, refund_no: str, when: dt.datetime) -> None:
    """Alipay refunds succeed within the call; the test day is in the past, so move the time there."""
    sandbox.control(f"alipay/refunds/{refund_no}/booked", json={"success_time": when.isoformat()})


@pytest.fixture
def day_of_trades(user_api, gateways):
    """On one past day, on each gateway: two payments and a partial refund; plus a wallet payment."""
    day = _day(4)
    made: dict[str, dict] = {}
    for i, gateway in enumerate(("wechat", "alipay", "wallyt")):
        first = _pay(user_api, gateways, gateway, _at(day, 9, i))
        second = _pay(user_api, gateways, gateway, _at(day, 10, i))
        refund = _refund(gateways, first, 250 + i, _at(day, 15, i))
        made[gateway] = {"payments": [first, second], "refund": refund}
    return day, made


def _stated(gateway: str, day: dt.date):
    """What the gateway's own bill states for the day (downloaded again, through the adapter)."""
    return bill_totals(get_gateway(gateway).bill(day))


def test_report_figures_equal_each_bills_own_totals(day_of_trades, gateways, user_api):
    day, made = day_of_trades
    runs = bill_reconcile(bill_date=day, now=_morning_after(day))
    assert {(r.gateway, r.status) for r in runs} == {("wechat", "done"), ("alipay", "done"), ("wallyt", "done")}

    report = settlement_report(date_from=day, date_to=day)

    for gateway in ("wechat", "alipay", "wallyt"):
        stated = _stated(gateway, day)
        ours = report.gateway_figures(day, gateway)
        # each figure equals the bill's own total
        assert (ours.gross_fen, ours.refunds_fen, ours.fees_fen) == (
            stated.gross_fen,
            stated.refunds_fen,
            stated.fees_fen,
        ), gateway
        assert ours.net_fen == stated.settled_fen == ours.gross_fen - ours.refunds_fen - ours.fees_fen
        # fees are real: kept on the payments, partly given back with the refund
        assert ours.fees_fen > 0 and ours.unbilled == 0 and ours.payments == 2 and ours.refund_count == 1
        lines = BillLine.objects.filter(gateway=gateway, bill_date=day)
        assert sorted(line.fee_fen > 0 for line in lines) == [False, True, True]  # the refund's fee is < 0
        check = next(c for c in report.checks_of(day) if c.gateway == gateway)
        assert check.state == "reconciled" and check.differences == {f: 0 for f in ("gross", "refunds", "fees", "net")}
    assert not BillDiscrepancy.objects.exists()
    # totals of the whole period add up
    assert report.total.net_fen == sum(report.gateway_figures(day, g).net_fen for g in made)
    assert report.total.net_fen == report.total.gross_fen - report.total.refunds_fen - report.total.fees_fen


def test_a_bill_whose_totals_differ_becomes_a_total_mismatch(day_of_trades, gateways):
    day, made = day_of_trades
    # given: WeChat's summary states one fen more in fees than its rows; Alipay's bill leaves out a payment
    gateways.control("wechat/bills/adjust", json={"totals_delta_fen": {"fees": 1}})
    left_out = made["alipay"]["payments"][1]
    gateways.control("alipay/bills/adjust", json={"omit": [left_out]})
    # when
    bill_reconcile(bill_date=day, now=_morning_after(day))
    # then: WeChat's fees and net differ by one fen (ours is the sum of its rows)
    wechat = {
        d.reference: (d.our_amount_fen, d.their_amount_fen)
        for d in BillDiscrepancy.objects.filter(gateway="wechat", kind=K.TOTAL_MISMATCH)
    }
    stated = _stated("wechat", day)
    assert wechat == {
        f"{day}:fees": (stated.fees_fen - 1, stated.fees_fen),
        f"{day}:net": (stated.settled_fen + 1, stated.settled_fen),
    }
    # and Alipay's missing payment is missing_remote, and its gross (and net) differ by its amount
    amount = Payment.objects.get(payment_no=left_out).amount_fen
    alipay = {(d.kind, d.reference): d for d in BillDiscrepancy.objects.filter(gateway="alipay")}
    assert (K.MISSING_REMOTE, left_out) in alipay
    gross = alipay[(K.TOTAL_MISMATCH, f"{day}:gross")]
    assert gross.our_amount_fen - gross.their_amount_fen == amount
    assert not BillDiscrepancy.objects.filter(gateway="wallyt").exists()
    report = settlement_report(date_from=day, date_to=day)
    states = {c.gateway: c.state for c in report.checks_of(day)}
    assert states == {"wechat": "discrepancy", "alipay": "discrepancy", "wallyt": "reconciled"}
    # the day's open discrepancies of a gateway count every kind: the payment missing from the bill too
    opened = {c.gateway: c.open_discrepancies for c in report.checks_of(day)}
    assert opened == {"wechat": 2, "alipay": 3, "wallyt": 0}  # alipay: missing_remote, gross and net
    # the payment left out of the bill has no fee from any bill yet: the day is provisional
    assert report.gateway_figures(day, "alipay").unbilled == 1

    # when the gateway's bill is right again, the next run resolves the totals by itself
    gateways.control("wechat/bills/adjust", method="DELETE")
    bill_reconcile(bill_date=day, now=_morning_after(day) + dt.timedelta(hours=1), gateways=["wechat"], force=True)
    assert not BillDiscrepancy.objects.filter(gateway="wechat").exclude(status="resolved").exists()
    assert BillRun.objects.get(gateway="wechat", bill_date=day).totals["mismatches"] == []


def test_a_total_mismatch_goes_through_the_finance_workflow(day_of_trades, gateways, client):
    from finance.bills_workflow import bill_discrepancy_auto_repair, bill_discrepancy_resolve

    day, _ = day_of_trades
    gateways.control("wallyt/bills/adjust", json={"totals_delta_fen": {"gross": -100}})
    bill_reconcile(bill_date=day, now=_morning_after(day))
    d = BillDiscrepancy.objects.get(gateway="wallyt", reference=f"{day}:gross")
    finance = staff_in("finance")
    with pytest.raises(Exception, match="cannot be repaired") as refused:
        bill_discrepancy_auto_repair(discrepancy_id=d.pk, user=finance)
    # in words people read: the kind's label, not its code
    assert str(refused.value.message).startswith('"Day total differs" cannot be repaired by asking the gateway')
    assert "total_mismatch" not in refused.value.message
    bill_discrepancy_resolve(discrepancy_id=d.pk, user=finance, note="Wallyt confirmed a summary error")
    d.refresh_from_db()
    assert d.status == "resolved" and d.resolved_by == finance
    # a person's resolution stays when the run sees the difference again
    bill_reconcile(bill_date=day, now=_morning_after(day) + dt.timedelta(hours=1), gateways=["wallyt"], force=True)
    d.refresh_from_db()
    assert d.status == "resolved" and d.resolution_note == "Wallyt confirmed a summary error"


def test_the_report_page_and_its_exports(day_of_trades, gateways, client):
    day, _ = day_of_trades
    gateways.control("wechat/bills/adjust", json={"totals_delta_fen": {"fees": 1}})
    bill_reconcile(bill_date=day, now=_morning_after(day))
    report = settlement_report(date_from=day, date_to=day)
    total = report.total
    url = reverse("admin:backoffice_settlement")
    query = {"date_from": day.isoformat(), "date_to": day.isoformat()}

    client.force_login(staff_in("support"))
    assert client.get(url, query).status_code == 403  # support does not see settlement
    client.force_login(staff_in("finance"))
    page = client.get(url, query).content.decode()
    for fen in (total.gross_fen, total.refunds_fen, total.fees_fen, total.net_fen):
        assert format_yuan(fen) in page
    assert "<svg" in page and "<script" not in page.split("<svg")[1].split("</svg>")[0]
    assert 'class="bo-check-discrepancy" data-gateway="wechat"' in page and "fees +¥0.01" not in page
    assert "fees -¥0.01" in page  # ours minus the bill's
    assert "WeChat Pay (QR code)" in page and "Wallyt (WeChat mini-program)" in page

    got = client.get(url, {**query, "format": "csv"})
    assert got["Content-Type"].startswith("text/csv") and got.content.startswith("\ufeff".encode())  # Excel: UTF-8
    lines = list(csv.reader(io.StringIO(got.content.decode("utf-8-sig"))))
    head, *rest = lines
    rows = [dict(zip(head, line, strict=True)) for line in rest[:3]]
    assert {r["channel_code"] for r in rows} == {"wechat_native", "alipay_page", "wallyt_jsapi"}
    assert {r["channel"] for r in rows} == {"WeChat Pay (QR code)", "Alipay (computer)", "Wallyt (WeChat mini-program)"}
    assert sum(int(r["net_fen"]) for r in rows) == total.net_fen
    wechat = next(r for r in rows if r["channel_code"] == "wechat_native")
    assert wechat["gross"] == format_yuan(int(wechat["gross_fen"])) and wechat["gross"].startswith("¥")
    # a totals row, then each bill's check in the words of the page
    totals = dict(zip(head, rest[3], strict=True))
    assert (
        totals["day"] == "Total"
        and int(totals["net_fen"]) == total.net_fen
        and totals["net"] == format_yuan(total.net_fen)
    )
    checks_at = next(
        i for i, line in enumerate(lines) if line[:1] == ["Bill checks: each bill's own totals against ours"]
    )
    check_head = lines[checks_at + 1]
    checks = {line[1]: dict(zip(check_head, line, strict=True)) for line in lines[checks_at + 2 :]}
    assert set(checks) == {"WeChat Pay", "Alipay", "Wallyt"}
    assert (
        checks["WeChat Pay"]["state"] == "differs from the bill"
        and checks["WeChat Pay"]["differences"] == "fees -¥0.01, net +¥0.01"
    )
    assert checks["Alipay"]["state"] == "matches the bill" and checks["WeChat Pay"]["open_discrepancies"] == "2"

    got = client.get(url, {**query, "format": "xlsx"})
    assert got["Content-Disposition"] == f'attachment; filename="settlement_{day:%Y%m%d}_{day:%Y%m%d}.xlsx"'
    book = load_workbook(io.BytesIO(got.content))
    sheet = book["Settlement"]
    header = [c.value for c in sheet[1]]
    assert header[:8] == [
        "Day",
        "Channel",
        "Payments",
        "Refunds (count)",
        "Gross paid",
        "Refunds",
        "Fees",
        "Net settled",
    ]
    body = list(sheet.iter_rows(min_row=2, max_row=4, values_only=True))
    assert sum(r[11] for r in body) == total.net_fen and sheet["E2"].number_format.startswith('"¥"')
    assert sheet["A5"].value == "Total" and sheet["H5"].value == "=SUM(H2:H4)"
    checks = {r[1]: r for r in book["Bill checks"].iter_rows(min_row=2, values_only=True)}
    # the page's words: the gateway's name and the check's state as the page says it
    assert checks["WeChat Pay"][2] == "differs from the bill" and checks["Alipay"][2] == "matches the bill"
    assert "wechat" not in checks and "discrepancy" not in {r[2] for r in checks.values()}


def test_unbilled_days_are_provisional_and_wallet_spending_is_no_settled_money(user_api, gateways, client):
    from payments.services import PaymentStart, payment_start
    from payments.tests.flows import rental
    from wallets.models import WalletTransaction
    from wallets.services import wallet_credit

    now = timezone.localtime()
    wallet_credit(
        user_id=user_api.user.pk, amount_fen=5000, type=WalletTransaction.Type.ADJUSTMENT, reference="t", actor=SYSTEM
    )
    order = rental(user_api)
    payment_start(user=user_api.user, request=PaymentStart(order_no=order["order_no"], channel="wallet"))
    _pay(user_api, gateways, "wechat", now)
    report = settlement_report(date_from=now.date() - dt.timedelta(days=1), date_to=now.date())
    by = {row.channel: row.figures for row in report.rows}
    # the wallet's money was settled when it was topped up through a gateway: spending it is internal
    assert "wallet" not in by and [r.channel for r in report.wallet_rows] == ["wallet"]
    wallet = report.wallet_total
    assert wallet.payments == 1 and wallet.gross_fen == 1000 and wallet.fees_fen == 0 and wallet.unbilled == 0
    assert report.total.gross_fen == by["wechat_native"].gross_fen  # net settled: the gateways' money only
    assert report.total.net_fen == sum(f.net_fen for f in by.values())
    assert by["wechat_native"].unbilled == 1 and by["wechat_native"].fees_fen == 0  # no bill yet: fee unknown
    # the page says so, and keeps the wallet out of its totals and its chart; so does the CSV
    client.force_login(staff_in("finance"))
    url = reverse("admin:backoffice_settlement")
    query = {"date_from": now.date().isoformat(), "date_to": now.date().isoformat()}
    page = client.get(url, query).content.decode()
    assert "Wallet spending (internal)" in page and "in no settled total" in page
    assert f'id="bo-total-gross">{format_yuan(report.total.gross_fen)}<' in page
    assert f'id="bo-wallet-spent">{format_yuan(1000)}<' in page
    lines = list(csv.reader(io.StringIO(client.get(url, {**query, "format": "csv"}).content.decode("utf-8-sig"))))
    total_line = next(line for line in lines if line[:1] == ["Total"])
    assert total_line[lines[0].index("gross_fen")] == str(report.total.gross_fen)
    wallet_at = next(i for i, line in enumerate(lines) if line[:1] and line[0].startswith("Wallet spending"))
    assert wallet_at > lines.index(total_line) and lines[wallet_at + 1][2] == "wallet"
    with pytest.raises(ValueError):
        settlement_report(date_from=now.date(), date_to=now.date() - dt.timedelta(days=1))
    assert not BillRun.objects.exists()  # the report only reads


def test_the_report_reads_in_a_fixed_number_of_queries(day_of_trades, gateways, django_assert_max_num_queries):
    day, _ = day_of_trades
    bill_reconcile(bill_date=day, now=_morning_after(day))
    with django_assert_max_num_queries(5):
        report = settlement_report(date_from=day - dt.timedelta(days=30), date_to=day)
    assert len(report.checks) == 31 * 3
