"""Shared set-up for the back-office tests: the groups from the migration, staff per role, paid orders."""

from __future__ import annotations

import importlib
import secrets

import pytest
from django.apps import apps as django_apps
from django.contrib.auth.models import Group
from django.test import Client
from django.utils import timezone

from core.audit import Actor
from core.tests.factories import StaffFactory, UserFactory
from orders.models import Order
from orders.services import order_mark_paid
from orders.tests.factories import RentalOrderFactory
from payments.gateways.base import RefundState, RefundStatus
from payments.gateways.registry import get_gateway
from payments.models import Payment, PaymentEvent
from payments.services import PaymentStart, payment_start
from refunds.models import Refund
from refunds.services import _refund_mark_processing, refund_apply_gateway_status, refund_approve, refund_request
from wallets.services import wallet_credit

ROLES = ("finance", "support", "operations", "anonymous")


def ensure_groups() -> None:
    """Run the migration's function again (a flush between transactional tests drops the groups;
    running it twice also shows it is idempotent)."""
    importlib.import_module("refunds.migrations.0002_groups").create_groups(django_apps, None)
    importlib.import_module("refunds.migrations.0006_refund_gateway_unknown").grant_resend(django_apps, None)
    importlib.import_module("payments.migrations.0008_payscore_view_permissions").grant_views(django_apps, None)
    importlib.import_module("orders.migrations.0005_operations_abandoned").grant(django_apps, None)


def staff_in(*groups: str, username: str | None = None):
    ensure_groups()
    user = StaffFactory(username=username or f"{'-'.join(groups)}-{secrets.token_hex(3)}")
    user.groups.add(*Group.objects.filter(name__in=groups))
    return user


def client_for(role: str) -> Client:
    client = Client()
    if role != "anonymous":
        client.force_login(staff_in(role))
    return client


def paid_wallet_order(user=None, fen: int = 5_000) -> tuple[Order, Payment]:
    """A rental paid from the wallet (a refund of it settles at once, no gateway)."""
    user = user or UserFactory()
    wallet_credit(
        user_id=user.pk, amount_fen=fen, type="topup", reference=f"TU-{secrets.token_hex(4)}", actor=Actor.system("t")
    )
    order = RentalOrderFactory(user=user)
    payment = payment_start(user=user, request=PaymentStart(order_no=order.order_no, channel="wallet"))
    order.refresh_from_db()
    return order, payment


def paid_wechat_order(user=None) -> tuple[Order, Payment]:
    """A rental whose WeChat payment succeeded (test data: the payment row is written as the
    notification would have left it; the order goes through its service)."""
    order = RentalOrderFactory(user=user or UserFactory())
    payment = Payment.objects.create(
        payment_no=f"PYT{secrets.token_hex(8).upper()}",
        order=order,
        channel="wechat_native",
        status=Payment.Status.SUCCEEDED,
        amount_fen=order.amount_fen,
        gateway_trade_no="4200000000TEST",
        paid_at=timezone.now(),
    )
    PaymentEvent.objects.create(payment=payment, action="paid", to_status="succeeded", actor="gateway:wechat")
    order_mark_paid(
        order_id=order.pk, paid_at=payment.paid_at, actor=Actor.gateway("wechat"), reference=payment.payment_no
    )
    order.refresh_from_db()
    return order, payment


def requested_refund(order: Order, *, by=None, amount_fen: int | None = None, reason: str = "customer asked") -> Refund:
    return refund_request(
        order_no=order.order_no,
        amount_fen=amount_fen,
        reason=reason,
        requested_by=by or staff_in("support"),
        source=Refund.Source.STAFF,
    )


def abnormal_refund(order: Order) -> Refund:
    """A WeChat refund the gateway answered ABNORMAL (approved, submitted, then ABNORMAL): the word carries
    what WeChat's REFUND.ABNORMAL notification carries (the test needs the ``gateways`` fixture)."""
    refund = requested_refund(order)
    refund_approve(refund_id=refund.pk, approver=staff_in("finance"), note="ok")
    _refund_mark_processing(refund_id=refund.pk)  # what refund_submit does before calling the gateway
    word = RefundStatus(
        refund_no=refund.refund_no,
        state=RefundState.ABNORMAL,
        gateway="wechat",
        source="notify",
        payment_no=refund.payment.payment_no,
        gateway_trade_no=refund.payment.gateway_trade_no,
        amount_fen=refund.amount_fen,
        total_fen=refund.payment.amount_fen,
        merchant_id=get_gateway("wechat").identity().merchant_id,
        gateway_state="ABNORMAL",
    )
    refund_apply_gateway_status(status=word, actor=Actor.gateway("wechat"))
    refund.refresh_from_db()
    assert refund.status == Refund.Status.ABNORMAL
    return refund


@pytest.fixture
def clients():
    return {role: client_for(role) for role in ROLES}
