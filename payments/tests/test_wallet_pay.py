"""Paying a rental from the wallet: one transaction, never an overdraft."""

import pytest
from django.db.models import Sum

from conftest import run_concurrently
from core.audit import Actor
from lockers.models import PickupCode
from lockers.tests.factories import CompartmentFactory, PricePlanFactory
from orders.models import Order
from orders.services import order_create_rental
from payments.models import Payment, PaymentEvent
from payments.services import PaymentStart, payment_start
from payments.tests.flows import pay, rental
from wallets.models import Wallet, WalletTransaction
from wallets.services import wallet_credit


def _fund(user, fen):
    wallet_credit(user_id=user.pk, amount_fen=fen, type="topup", reference=f"TU-{fen}", actor=Actor.system("t"))


@pytest.mark.django_db
def test_wallet_pays_at_once(user_api):
    _fund(user_api.user, 5_000)
    order = rental(user_api)  # M, 2 hours at 500 = 1000
    response = pay(user_api, order["order_no"], "wallet")
    assert response.status_code == 201 and response.json()["status"] == "succeeded"
    assert Order.objects.get(order_no=order["order_no"]).status == "paid"
    wallet = Wallet.objects.get(user=user_api.user)
    assert wallet.balance_fen == 4_000
    entry = wallet.transactions.get(type="payment")
    assert entry.amount_fen == -1_000 and entry.reference == response.json()["payment_no"]


@pytest.mark.django_db
def test_insufficient_balance_is_402_and_writes_nothing(user_api):
    _fund(user_api.user, 999)
    order = rental(user_api)
    response = pay(user_api, order["order_no"], "wallet")
    assert response.status_code == 402 and response.json()["error"]["code"] == "insufficient_balance"
    assert not Payment.objects.exists() and not PaymentEvent.objects.exists()
    assert WalletTransaction.objects.count() == 1
    unpaid = Order.objects.get(order_no=order["order_no"])
    assert unpaid.status == "pending_payment" and list(unpaid.events.values_list("action", flat=True)) == ["create"]
    assert unpaid.compartment.status == "reserved" and not PickupCode.objects.exists()  # the debit came last


@pytest.mark.django_db
def test_the_wallet_row_is_locked_only_for_the_debit_and_the_commit(user_api):
    # one user paying many orders at once contends on one wallet row: it is locked last
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    _fund(user_api.user, 5_000)
    order = rental(user_api)
    with CaptureQueriesContext(connection) as captured:
        assert pay(user_api, order["order_no"], "wallet").status_code == 201
    sql = [q["sql"] for q in captured.captured_queries]
    locked = next(i for i, q in enumerate(sql) if "wallets_wallet" in q and "FOR UPDATE" in q)
    after = [q.split(" ", 1)[0].upper() for q in sql[locked + 1 :]]
    # the idempotency read, the ledger row, the balance (and the savepoint's release); then nothing else
    assert after[:3] == ["SELECT", "INSERT", "UPDATE"] and set(after[3:]) <= {"RELEASE"}, after


@pytest.mark.django_db
def test_wallet_cannot_pay_a_topup(user_api):
    _fund(user_api.user, 5_000)
    topup = user_api.post("/api/v1/wallet/topups/", {"amount_fen": 100}, format="json").json()
    response = pay(user_api, topup["order_no"], "wallet")
    assert response.status_code == 409 and response.json()["error"]["code"] == "channel_not_allowed"
    assert not Payment.objects.exists()


@pytest.mark.django_db
def test_wallet_refuses_while_a_gateway_payment_is_open(user_api, gateways):
    _fund(user_api.user, 5_000)
    order = rental(user_api)
    assert pay(user_api, order["order_no"], "wechat_native").status_code == 201
    response = pay(user_api, order["order_no"], "wallet")
    assert response.status_code == 409 and response.json()["error"]["code"] == "payment_in_progress"
    assert Wallet.objects.get(user=user_api.user).balance_fen == 5_000


@pytest.mark.django_db(transaction=True)
def test_sixteen_orders_from_one_wallet_that_covers_ten():
    # given one wallet holding exactly 10 rentals' worth and 16 pending rentals
    from core.tests.factories import UserFactory

    user = UserFactory()
    PricePlanFactory(size="S", price_per_hour_fen=300, min_hours=1, cap_fen=3_000)
    orders = [
        order_create_rental(user=user, compartment_id=CompartmentFactory(size="S").pk, hours=1) for _ in range(16)
    ]
    _fund(user, 3_000)

    # when 16 threads pay them at once
    results = run_concurrently(
        lambda order: payment_start(user=user, request=PaymentStart(order_no=order.order_no, channel="wallet")),
        args_list=[(o,) for o in orders],
    )

    # then exactly 10 succeed, 6 are refused, nothing is overdrawn and the ledger explains the balance
    assert sum(isinstance(r, Payment) for r in results) == 10, results
    assert sum(getattr(r, "code", "") == "insufficient_balance" for r in results) == 6
    wallet = Wallet.objects.get(user=user)
    assert wallet.balance_fen == 0
    assert wallet.transactions.aggregate(s=Sum("amount_fen"))["s"] == 0
    assert Order.objects.filter(status="paid").count() == 10
    assert Payment.objects.filter(status="succeeded").count() == 10


@pytest.mark.django_db(transaction=True)
def test_same_order_paid_twice_at_once_is_paid_once():
    from core.tests.factories import UserFactory

    user = UserFactory()
    PricePlanFactory(size="S", price_per_hour_fen=300)
    order = order_create_rental(user=user, compartment_id=CompartmentFactory(size="S").pk, hours=1)
    _fund(user, 10_000)
    results = run_concurrently(
        lambda: payment_start(user=user, request=PaymentStart(order_no=order.order_no, channel="wallet")),
        args_list=[()] * 4,
    )
    assert sum(isinstance(r, Payment) for r in results) == 1
    assert Wallet.objects.get(user=user).balance_fen == 10_000 - 300
    assert Payment.objects.filter(order=order).count() == 1
