"""Paying a rental from the wallet: one transaction, never an overdraft."""

import pytest
from django.db.models import Sum

from config.audit import Actor
from conftest import run_concurrently
from lockers.tests.factories import CompartmentFactory, PricePlanFactory
from orders.models import Order
from orders.services import order_create_rental
from payments.models import Payment
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
    assert not Payment.objects.exists()
    assert WalletTransaction.objects.count() == 1
    assert Order.objects.get(order_no=order["order_no"]).status == "pending_payment"


@pytest.mark.django_db
def test_wallet_cannot_pay_a_topup(user_api):
    _fund(user_api.user, 5_000)
    topup = user_api.post("/api/v1/wallet/topups/", {"amount_fen": 100}, format="json").json()
    response = pay(user_api, topup["order_no"], "wallet")
    assert response.status_code == 400 and response.json()["error"]["code"] == "channel_not_allowed"
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
    from config.tests.factories import UserFactory

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
    from config.tests.factories import UserFactory

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
