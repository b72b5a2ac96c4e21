"""After the chaos: per payment and per refund, our state and amounts against the sandbox's; wallets against their
ledgers. Django must be set up (the bench process reads the bench database directly)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

FINAL_TRADE = {"SUCCESS", "CLOSED"}


@dataclass
class Check:
    stuck: list[str] = field(default_factory=list)  # not final here although final at the gateway (or never healed)
    mismatches: list[str] = field(default_factory=list)  # status or amount differ between here and the gateway
    ledger_breaks: list[str] = field(default_factory=list)  # a wallet whose balance is not its ledger's
    open_here: int = 0  # payments / refunds not final here (healing still under way, or stuck)
    counts: dict[str, Counter] = field(default_factory=dict)

    @property
    def clean(self) -> bool:
        return not (self.stuck or self.mismatches or self.ledger_breaks)


def sandbox_state(sandbox) -> tuple[dict[tuple[str, str], dict], dict[tuple[str, str], dict]]:
    """(trades by (gateway, out_trade_no), refunds by (gateway, out_refund_no)) as the sandbox knows them."""
    trades = {(t["gateway"], t["out_trade_no"]): t for t in sandbox.control("transactions")["transactions"]}
    refunds = {(r["gateway"], r["out_refund_no"]): r for r in sandbox.control("refunds")["refunds"]}
    return trades, refunds


def compare(trades: dict[tuple[str, str], dict], refunds: dict[tuple[str, str], dict]) -> Check:
    from django.db.models import Sum

    from payments.models import Channel, Payment
    from refunds.models import Refund
    from wallets.models import Wallet, WalletTransaction

    check = Check(counts={"payments": Counter(), "refunds": Counter(), "channels": Counter()})
    ours_refunds: set[tuple[str, str]] = set()
    for payment in Payment.objects.select_related("order").order_by("id"):
        check.counts["payments"][payment.status] += 1
        check.counts["channels"][payment.channel] += 1
        if payment.flag:
            check.counts["payments"][payment.flag] += 1
        _payment(check, payment, trades.get((payment.gateway, payment.payment_no)))
        settled = payment.refunds.filter(status=Refund.Status.SUCCEEDED).aggregate(s=Sum("amount_fen"))["s"] or 0
        if settled != payment.refunded_fen:
            check.mismatches.append(f"{payment.payment_no}: refunded_fen {payment.refunded_fen}, refunds {settled}")
        if payment.channel == Channel.WALLET:
            continue
        trade = trades.get((payment.gateway, payment.payment_no))
        if trade is not None and payment.status == Payment.Status.SUCCEEDED:
            theirs = sum(r["amount"] for r in trade["refunds"] if r["status"] == "SUCCESS")
            if theirs != payment.refunded_fen:
                check.mismatches.append(f"{payment.payment_no}: refunded here {payment.refunded_fen}, there {theirs}")
    for refund in Refund.objects.select_related("payment").order_by("id"):
        check.counts["refunds"][refund.status] += 1
        gateway = refund.payment.gateway
        ours_refunds.add((gateway, refund.refund_no))
        if refund.payment.channel != Channel.WALLET:
            _refund(check, refund, refunds.get((gateway, refund.refund_no)))
        elif refund.status not in (Refund.Status.SUCCEEDED, Refund.Status.REJECTED):
            check.open_here += 1
            check.stuck.append(f"{refund.refund_no}: wallet refund {refund.status}")
    for key, theirs in refunds.items():
        if key not in ours_refunds:
            check.mismatches.append(f"{key[1]}: a {key[0]} refund we do not have ({theirs['status']})")
    for wallet in Wallet.objects.order_by("id"):
        rows = WalletTransaction.objects.filter(wallet=wallet)
        total = rows.aggregate(s=Sum("amount_fen"))["s"] or 0
        last = rows.order_by("-id").values_list("balance_after_fen", flat=True).first() or 0
        if wallet.balance_fen != total or wallet.balance_fen != last or wallet.balance_fen < 0:
            check.ledger_breaks.append(f"wallet {wallet.pk}: balance {wallet.balance_fen}, ledger {total}, last {last}")
    _wallet_money(check)
    return check


def _payment(check: Check, payment: Any, trade: dict | None) -> None:
    from orders.models import Order
    from payments.models import Channel, Payment

    status = payment.status
    if status in Payment.OPEN:
        check.open_here += 1
        there = trade["state"] if trade else "unknown"
        check.stuck.append(f"{payment.payment_no}: {status} here, {there} at the gateway")
        return
    if status == Payment.Status.SUCCEEDED:
        if payment.flag == "" and payment.order.status == Order.Status.PENDING_PAYMENT:
            check.mismatches.append(f"{payment.payment_no}: paid, its order still pending_payment")
        if payment.channel == Channel.WALLET:
            return
        if trade is None or trade["state"] != "SUCCESS":
            check.mismatches.append(f"{payment.payment_no}: succeeded here, {trade and trade['state']} at the gateway")
        elif trade["amount"] != payment.amount_fen:
            check.mismatches.append(f"{payment.payment_no}: {payment.amount_fen} fen here, {trade['amount']} there")
        return
    if trade is not None and trade["state"] == "SUCCESS":  # closed or failed here, paid there: money not recorded
        check.mismatches.append(f"{payment.payment_no}: {status} here, paid at the gateway")


def _refund(check: Check, refund: Any, theirs: dict | None) -> None:
    from refunds.models import Refund

    status, state = refund.status, theirs["status"] if theirs else None
    if status in (Refund.Status.REQUESTED, Refund.Status.APPROVED, Refund.Status.PROCESSING, Refund.Status.ABNORMAL):
        check.open_here += 1
        if status == Refund.Status.REQUESTED:
            check.stuck.append(f"{refund.refund_no}: still requested (nobody decided)")
        elif state is None:
            check.stuck.append(f"{refund.refund_no}: {status} here, unknown to the gateway")
        else:
            check.stuck.append(f"{refund.refund_no}: {status} here, {state} at the gateway")
        return
    if status == Refund.Status.SUCCEEDED:
        if state != "SUCCESS":
            check.mismatches.append(f"{refund.refund_no}: succeeded here, {state} at the gateway")
        elif theirs["amount"] != refund.amount_fen:
            check.mismatches.append(f"{refund.refund_no}: {refund.amount_fen} fen here, {theirs['amount']} there")
        return
    if state == "SUCCESS":  # failed or rejected here, money returned there
        check.mismatches.append(f"{refund.refund_no}: {status} here, SUCCESS at the gateway")


def _wallet_money(check: Check) -> None:
    """Every top-up paid credited once, every wallet payment debited once, every wallet refund credited once."""
    from orders.models import Order
    from payments.models import Channel, Payment
    from refunds.models import Refund
    from wallets.models import WalletTransaction

    Type = WalletTransaction.Type
    topups = Counter(WalletTransaction.objects.filter(type=Type.TOPUP).values_list("reference", flat=True))
    debits = Counter(WalletTransaction.objects.filter(type=Type.PAYMENT).values_list("reference", flat=True))
    credits = Counter(WalletTransaction.objects.filter(type=Type.REFUND).values_list("reference", flat=True))
    paid_topups = Payment.objects.filter(
        status=Payment.Status.SUCCEEDED, flag="", order__kind=Order.Kind.WALLET_TOPUP
    ).values_list("order__order_no", "payment_no")
    for order_no, payment_no in paid_topups:
        if topups[order_no] + topups[payment_no] != 1:
            check.ledger_breaks.append(f"top-up {order_no}: credited {topups[order_no] + topups[payment_no]} times")
    for payment_no in Payment.objects.filter(status=Payment.Status.SUCCEEDED, channel=Channel.WALLET).values_list(
        "payment_no", flat=True
    ):
        if debits[payment_no] != 1:
            check.ledger_breaks.append(f"wallet payment {payment_no}: debited {debits[payment_no]} times")
    for refund_no in Refund.objects.filter(status=Refund.Status.SUCCEEDED, payment__channel=Channel.WALLET).values_list(
        "refund_no", flat=True
    ):
        if credits[refund_no] != 1:
            check.ledger_breaks.append(f"wallet refund {refund_no}: credited {credits[refund_no]} times")
