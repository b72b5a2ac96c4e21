"""Reads for the pages: small view models (money already formatted) built from the apps' models."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.db.models import Count, Q, QuerySet
from django.shortcuts import get_object_or_404
from django.utils import timezone

from core.money import format_yuan
from lockers.models import Cabinet, Compartment, PricePlan, Size
from lockers.selectors import pickup_codes_active
from orders.models import Order
from orders.selectors import RentalClock, order_list_for_user, rental_clock
from payments.models import Payment, ServiceOrder
from refunds.models import Refund
from refunds.services import user_refund_refusals
from wallets.models import Wallet, WalletTransaction


def yuan(fen: int | None) -> str:
    """``332271`` -> ``"3,322.71"``: ``core.money.format_yuan`` for templates that print the ¥ themselves."""
    return format_yuan(fen, symbol=False)


def duration_text(delta: timedelta) -> str:
    minutes = max(int(delta.total_seconds() // 60), 0)
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min" if hours else f"{minutes} min"


def cabinets_with_free_count() -> QuerySet[Cabinet]:
    free = Q(compartments__status=Compartment.Status.FREE)
    return Cabinet.objects.annotate(free_count=Count("compartments", filter=free)).order_by("code")


@dataclass
class SizeGroup:
    size: str
    label: str
    price_per_hour: str  # yuan, "" when the size has no active price plan
    min_hours: int
    compartments: list[Compartment] = field(default_factory=list)


def free_compartments_by_size(*, cabinet: Cabinet) -> list[SizeGroup]:
    """Free compartments of one cabinet grouped by size, each group with the server's hourly price."""
    plans = {plan.size: plan for plan in PricePlan.objects.filter(is_active=True)}
    groups: list[SizeGroup] = []
    free = cabinet.compartments.filter(status=Compartment.Status.FREE).order_by("label")
    for size, label in Size.choices:
        members = [c for c in free if c.size == size]
        if not members:
            continue
        plan = plans.get(size)
        groups.append(
            SizeGroup(
                size=size,
                label=label,
                price_per_hour=yuan(plan.price_per_hour_fen) if plan else "",
                min_hours=plan.min_hours if plan else 1,
                compartments=members,
            )
        )
    return groups


def order_for_user(*, user, order_no: str) -> Order:
    """The user's own order, or 404 (another user's order is not found, never forbidden)."""
    return get_object_or_404(order_list_for_user(user=user), order_no=order_no)


def latest_payment(order: Order) -> Payment | None:
    return order.payments.order_by("-id").first()


def order_is_expired(order: Order, *, now: datetime | None = None) -> bool:
    return order.status == Order.Status.PENDING_PAYMENT and order.expires_at <= (now or timezone.now())


def wallet_balance_fen(*, user) -> int:
    wallet = Wallet.objects.filter(user=user).first()
    return wallet.balance_fen if wallet else 0


def wallet_ledger(*, user, limit: int = 50) -> list[WalletTransaction]:
    entries = list(WalletTransaction.objects.filter(wallet__user=user).order_by("-id")[:limit])
    for entry in entries:  # display strings for the template (signed amounts)
        entry.amount_display = format_yuan(entry.amount_fen, signed=True)  # type: ignore[attr-defined]
        entry.balance_display = format_yuan(entry.balance_after_fen)  # type: ignore[attr-defined]
    return entries


@dataclass(frozen=True)
class Charge:
    """What the customer is charged for an order, as the pages must say it (amounts in fen).

    ``state``: ``paid`` (paid up front: ``amount_fen`` is the order's price), ``after_use`` (WeChat Pay
    Score, rental running: nothing billed yet, at most ``amount_fen`` = the service order's risk fund),
    ``billed`` (the rental ended: ``amount_fen`` = the service order's total, WeChat is collecting) or
    ``collected`` (``amount_fen`` = what WeChat collected, ``ServiceOrder.paid_fen``). Refunds count
    against ``amount_fen`` only when something was paid or collected."""

    state: str
    amount_fen: int

    @property
    def amount(self) -> str:
        return yuan(self.amount_fen)

    @property
    def charged(self) -> bool:
        return self.state in ("paid", "collected")


_LIVE_SERVICE_ORDER = (ServiceOrder.Status.CONFIRMED, ServiceOrder.Status.COMPLETED, ServiceOrder.Status.PAID)


def _charge(order: Order, so: ServiceOrder | None) -> Charge:
    if so is None:
        return Charge("paid", order.amount_fen)
    if so.status == ServiceOrder.Status.PAID:
        return Charge("collected", so.paid_fen)
    if so.total_fen is not None:
        return Charge("billed", so.total_fen)
    return Charge("after_use", so.risk_fund_fen)


def order_charges(orders: list[Order]) -> dict[int, Charge]:
    """Each order's ``Charge`` by order id (one query): an order paid after use with WeChat Pay Score is
    charged what its service order says, never the order's booked price."""
    live = ServiceOrder.objects.filter(order__in=orders, status__in=_LIVE_SERVICE_ORDER).order_by("id")
    by_order = {so.order_id: so for so in live}  # at most one live per order (service_order_one_live_per_order)
    return {o.pk: _charge(o, by_order.get(o.pk)) for o in orders}


def refunded_text(refunds: list[Refund]) -> str:
    """What the refunds gave back, in yuan ("" when nothing yet): counted against ``Charge.amount``."""
    fen = sum(r.amount_fen for r in refunds if r.status == Refund.Status.SUCCEEDED)
    return yuan(fen) if fen else ""


def order_refunds(order: Order) -> list[Refund]:
    """The order's refunds, oldest first, each with its amount in yuan (``amount_display``)."""
    refunds = list(Refund.objects.filter(order=order).order_by("id"))
    for refund in refunds:
        refund.amount_display = yuan(refund.amount_fen)  # type: ignore[attr-defined]
    return refunds


@dataclass
class OrderRow:
    order: Order
    charge: Charge
    pickup_code: str
    refunds: list[Refund]
    refundable: bool
    expired: bool
    time_left: str = ""  # a running rental's paid time left ("1 h 05 min"), "" otherwise

    @property
    def refunded(self) -> str:
        return refunded_text(self.refunds)


def order_rows_for_user(*, user, limit: int = 50) -> list[OrderRow]:
    """ "My orders": each order with its pickup code, its refunds and its charge (four queries), and whether
    the customer may ask for a refund (``refunds.services.user_refund_refusals``: three more), whatever their number."""
    orders = list(order_list_for_user(user=user)[:limit])
    order_nos = [o.order_no for o in orders]
    codes = pickup_codes_active(references=order_nos)
    refunds: dict[int, list[Refund]] = {}
    for refund in Refund.objects.filter(order__in=orders).order_by("-id"):
        refund.amount_display = yuan(refund.amount_fen)  # type: ignore[attr-defined]
        refunds.setdefault(refund.order_id, []).append(refund)
    charges = order_charges(orders)
    refusals = user_refund_refusals(orders)
    now = timezone.now()
    return [
        OrderRow(
            order=o,
            charge=charges[o.pk],
            pickup_code=codes[o.order_no].code if o.order_no in codes else "",
            refunds=refunds.get(o.pk, []),
            refundable=refusals[o.pk] is None,  # the rule the refund API applies
            expired=order_is_expired(o, now=now),
            time_left=_time_left(rental_clock(o, code=codes.get(o.order_no), now=now)),
        )
        for o in orders
    ]


def _time_left(clock: RentalClock) -> str:
    if clock.time_left_seconds is None:
        return ""
    return duration_text(timedelta(seconds=clock.time_left_seconds)) if clock.time_left_seconds else "over"
