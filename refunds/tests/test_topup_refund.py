"""A refunded wallet top-up: the money sent back to the payer's gateway account leaves the wallet (it was
credited when the top-up was paid), and comes back if the refund is rejected or fails. Found by the chaos
run: before, the customer kept both."""

import pytest

from core.audit import Actor
from core.errors import InsufficientBalance
from payments.models import Payment
from payments.services import payment_sync
from payments.tests.flows import pay, rental
from refunds.models import Refund
from refunds.services import refund_approve, refund_reject, refund_request, refund_submit, refund_sync
from refunds.tests.test_workflow import staff_with
from wallets.models import Wallet, WalletTransaction

pytestmark = pytest.mark.django_db
T = WalletTransaction.Type


def paid_topup(user_api, sandbox, fen: int) -> str:
    order = user_api.post("/api/v1/wallet/topups/", {"amount_fen": fen}, format="json").json()
    payment_no = pay(user_api, order["order_no"], "wechat_native").json()["payment_no"]
    sandbox.control(f"wechat/transactions/{payment_no}/pay", json={})
    payment_sync(payment_no=payment_no, actor=Actor.system("t"))
    assert Payment.objects.get(payment_no=payment_no).status == "succeeded"
    return order["order_no"]


def balance(user) -> int:
    wallet = Wallet.objects.get(user=user)
    assert wallet.balance_fen == sum(t.amount_fen for t in wallet.transactions.all())  # the ledger agrees
    return wallet.balance_fen


def ledger(user) -> list[tuple[str, int]]:
    return [(t.type, t.amount_fen) for t in WalletTransaction.objects.filter(wallet__user=user).order_by("id")]


def test_a_refunded_top_up_leaves_the_wallet_once(user_api, gateways):
    order_no = paid_topup(user_api, gateways, 1_000)
    assert balance(user_api.user) == 1_000

    refund = refund_request(order_no=order_no, amount_fen=400, reason="changed my mind", requested_by=user_api.user)
    assert balance(user_api.user) == 600  # held at once: it cannot be spent while the refund is on its way
    refund_approve(refund_id=refund.pk, approver=staff_with("refunds.approve_refund"), note="ok")
    refund_submit(refund_id=refund.pk)
    gateways.control(f"wechat/refunds/{refund.refund_no}/settle", json={"status": "SUCCESS"})
    refund_sync(refund_id=refund.pk, actor=Actor.system("t"))

    assert Refund.objects.get(pk=refund.pk).status == "succeeded"
    assert balance(user_api.user) == 600
    assert ledger(user_api.user) == [(T.TOPUP, 1_000), (T.TOPUP_REFUND, -400)]


def test_a_top_up_already_spent_cannot_be_refunded(user_api, gateways):
    order_no = paid_topup(user_api, gateways, 1_000)
    rented = rental(user_api)  # 2 h of M: spends part of it
    assert pay(user_api, rented["order_no"], "wallet").status_code == 201
    left = balance(user_api.user)

    with pytest.raises(InsufficientBalance):
        refund_request(order_no=order_no, amount_fen=1_000, reason="all of it", requested_by=user_api.user)

    assert not Refund.objects.exists() and balance(user_api.user) == left


@pytest.mark.parametrize("outcome", ["rejected", "failed"])
def test_a_top_up_refund_that_does_not_go_through_gives_the_money_back(user_api, gateways, outcome):
    order_no = paid_topup(user_api, gateways, 1_000)
    refund = refund_request(order_no=order_no, amount_fen=1_000, reason="all", requested_by=user_api.user)
    assert balance(user_api.user) == 0
    finance = staff_with("refunds.approve_refund")

    if outcome == "rejected":
        refund_reject(refund_id=refund.pk, approver=finance, note="no")
    else:
        refund_approve(refund_id=refund.pk, approver=finance, note="ok")
        refund_submit(refund_id=refund.pk)
        gateways.control(f"wechat/refunds/{refund.refund_no}/settle", json={"status": "CLOSED"})
        refund_sync(refund_id=refund.pk, actor=Actor.system("t"))

    assert Refund.objects.get(pk=refund.pk).status == outcome
    assert balance(user_api.user) == 1_000
    assert ledger(user_api.user) == [(T.TOPUP, 1_000), (T.TOPUP_REFUND, -1_000), (T.REFUND_UNDONE, 1_000)]
