"""wallets.services: credits and debits ledgered once per reference, never below zero (also under
concurrency), the ledger append-only in the database."""

import pytest
from django.db import DatabaseError, IntegrityError, connection, transaction
from django.db.models import Sum
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.django import TestCase as HypothesisTestCase

from conftest import run_concurrently
from core.audit import Actor
from core.errors import InsufficientBalance, ValidationFailed
from core.tests.factories import UserFactory
from wallets.models import Wallet, WalletTransaction
from wallets.services import wallet_credit, wallet_debit

T = WalletTransaction.Type
ACTOR = Actor.system("test")


def assert_ledger_explains_balance(wallet: Wallet) -> None:
    wallet.refresh_from_db()
    total = wallet.transactions.aggregate(s=Sum("amount_fen"))["s"] or 0
    assert wallet.balance_fen == total
    last = wallet.transactions.order_by("-id").first()
    assert last is None or last.balance_after_fen == wallet.balance_fen


@pytest.mark.django_db
def test_credit_then_debit_keeps_the_ledger(user):
    wallet_credit(user_id=user.pk, amount_fen=1_000, type=T.TOPUP, reference="TU1", actor=ACTOR)
    entry = wallet_debit(user_id=user.pk, amount_fen=300, type=T.PAYMENT, reference="P1", actor=ACTOR)
    assert (entry.balance_before_fen, entry.balance_after_fen, entry.amount_fen) == (1_000, 700, -300)
    wallet = Wallet.objects.get(user=user)
    assert wallet.balance_fen == 700 and wallet.version == 2
    assert_ledger_explains_balance(wallet)


@pytest.mark.django_db
def test_debit_never_overdraws_and_writes_nothing(user):
    wallet_credit(user_id=user.pk, amount_fen=100, type=T.TOPUP, reference="TU1", actor=ACTOR)
    with pytest.raises(InsufficientBalance):
        wallet_debit(user_id=user.pk, amount_fen=101, type=T.PAYMENT, reference="P1", actor=ACTOR)
    wallet = Wallet.objects.get(user=user)
    assert wallet.balance_fen == 100 and wallet.transactions.count() == 1


@pytest.mark.django_db
def test_same_reference_moves_money_once(user):
    first = wallet_credit(user_id=user.pk, amount_fen=500, type=T.TOPUP, reference="TU1", actor=ACTOR)
    again = wallet_credit(user_id=user.pk, amount_fen=500, type=T.TOPUP, reference="TU1", actor=ACTOR)
    assert first.pk == again.pk
    assert Wallet.objects.get(user=user).balance_fen == 500


@pytest.mark.django_db
@pytest.mark.parametrize("amount", [0, -5, True, 1.5, "10"])
def test_amount_must_be_a_positive_integer(user, amount):
    with pytest.raises(ValidationFailed):
        wallet_credit(user_id=user.pk, amount_fen=amount, type=T.TOPUP, reference="X", actor=ACTOR)
    assert not WalletTransaction.objects.exists()


@pytest.mark.django_db
def test_ledger_is_append_only_in_the_database(user):
    entry = wallet_credit(user_id=user.pk, amount_fen=500, type=T.TOPUP, reference="TU1", actor=ACTOR)
    with pytest.raises(DatabaseError), transaction.atomic():
        WalletTransaction.objects.filter(pk=entry.pk).update(amount_fen=999_999)
    with pytest.raises(DatabaseError), transaction.atomic():
        WalletTransaction.objects.filter(pk=entry.pk).delete()
    assert WalletTransaction.objects.get(pk=entry.pk).amount_fen == 500


@pytest.mark.django_db
def test_database_refuses_a_negative_balance(user):
    wallet_credit(user_id=user.pk, amount_fen=5, type=T.TOPUP, reference="TU1", actor=ACTOR)
    with pytest.raises(IntegrityError), transaction.atomic():
        Wallet.objects.filter(user=user).update(balance_fen=-1)


class WalletLedgerProperties(HypothesisTestCase):
    """Any sequence of credits and debits: never negative, ledger always explains the balance."""

    @settings(max_examples=25, deadline=None)
    @given(st.lists(st.tuples(st.booleans(), st.integers(1, 5_000)), min_size=1, max_size=15))
    def test_any_sequence(self, ops):
        user = UserFactory()
        expected = 0
        for i, (is_credit, amount) in enumerate(ops):
            if is_credit:
                wallet_credit(user_id=user.pk, amount_fen=amount, type=T.TOPUP, reference=f"C{i}", actor=ACTOR)
                expected += amount
            elif amount <= expected:
                wallet_debit(user_id=user.pk, amount_fen=amount, type=T.PAYMENT, reference=f"D{i}", actor=ACTOR)
                expected -= amount
            else:
                with pytest.raises(InsufficientBalance):
                    wallet_debit(user_id=user.pk, amount_fen=amount, type=T.PAYMENT, reference=f"D{i}", actor=ACTOR)
        wallet = Wallet.objects.get(user=user)
        assert wallet.balance_fen == expected
        assert_ledger_explains_balance(wallet)


@pytest.mark.django_db(transaction=True)
def test_concurrent_debits_never_overdraw():
    # given a wallet holding enough for exactly 10 debits of 700
    user = UserFactory()
    wallet_credit(user_id=user.pk, amount_fen=7_000, type=T.TOPUP, reference="TU1", actor=ACTOR)

    # when 16 threads debit 700 each at once
    results = run_concurrently(
        lambda i: wallet_debit(user_id=user.pk, amount_fen=700, type=T.PAYMENT, reference=f"P{i}", actor=ACTOR),
        args_list=[(i,) for i in range(16)],
    )

    # then exactly 10 succeed, 6 are refused, and the ledger explains the balance
    assert sum(isinstance(r, WalletTransaction) for r in results) == 10
    assert sum(isinstance(r, InsufficientBalance) for r in results) == 6
    wallet = Wallet.objects.get(user=user)
    assert wallet.balance_fen == 0
    assert_ledger_explains_balance(wallet)
    assert connection.vendor == "postgresql"
