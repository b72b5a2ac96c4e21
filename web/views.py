"""Page views: thin. They validate input with a form, call the apps' services (the same ones the
API calls), and turn a ``DomainError`` into a message on the page, never a 500."""

from __future__ import annotations

import json
import logging
import re
from functools import partial, wraps
from urllib.parse import quote, urlencode

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import login, logout
from django.contrib.auth.decorators import login_required
from django.contrib.auth.forms import AuthenticationForm
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.safestring import mark_safe
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from rest_framework import serializers

from core.api import StrictQuerySerializer, error_body
from core.audit import Actor
from core.errors import DomainError
from core.throttling import throttle_page
from lockers.api import RentalHoursMixin
from lockers.models import Cabinet, Compartment, DoorPurpose
from lockers.pricing import overtime_since, price_quote
from lockers.selectors import pickup_codes_active
from orders.models import Order
from orders.overtime import OvertimeDue
from orders.selectors import rental_clock
from orders.services import order_cancel_by_user, order_create_rental, order_create_topup, order_open_door
from payments import services as payments
from payments.api import qr_svg
from payments.auth import user_for_openid, wechat_code2session
from payments.models import Channel, Payment
from web import selectors
from web.forms import (
    CheckoutForm,
    RentForm,
    TopupForm,
    WeChatLoginForm,
    add_domain_error,
    channel_name,
    channel_offer,
)

logger = logging.getLogger(__name__)
page = partial(login_required, login_url="web:login")
MODEL_BACKEND = "django.contrib.auth.backends.ModelBackend"
SYNC_AFTER_SECONDS = 5  # the waiting page asks the gateway itself after this long without news


# --- sign in / out ------------------------------------------------------------------------------


def _next_url(request: HttpRequest) -> str:
    target = request.POST.get("next") or request.GET.get("next") or ""
    ok = url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}, require_https=request.is_secure())
    return target if ok else reverse("web:cabinets")


@require_http_methods(["GET", "POST"])
@throttle_page("login")
def login_view(request: HttpRequest) -> HttpResponse:
    which = request.POST.get("form") if request.method == "POST" else None
    password_form = AuthenticationForm(request, data=request.POST if which == "password" else None)
    wechat_form = WeChatLoginForm(data=request.POST if which == "wechat" else None)
    if which == "password" and password_form.is_valid():
        login(request, password_form.get_user())
        return redirect(_next_url(request))
    if which == "wechat" and settings.SANDBOX_ENABLED and wechat_form.is_valid():
        try:
            user = user_for_openid(wechat_code2session(wechat_form.cleaned_data["code"]))
        except DomainError as exc:
            add_domain_error(wechat_form, exc, "code")
        else:
            if user.is_active:
                login(request, user, backend=MODEL_BACKEND)
                return redirect(_next_url(request))
            wechat_form.add_error("code", "This account is disabled.")
    elif which == "wechat" and not settings.SANDBOX_ENABLED:
        wechat_form.add_error(None, "WeChat sign-in works only inside WeChat here; use your password.")
    context = {
        "password_form": password_form,
        "wechat_form": wechat_form,
        "next": _next_url(request),
        "sandbox": settings.SANDBOX_ENABLED,
        "demo_hint": not settings.PRODUCTION,
    }
    return render(request, "web/login.html", context, status=400 if which else 200)


@require_POST
def logout_view(request: HttpRequest) -> HttpResponse:
    logout(request)
    return redirect("web:login")


# --- choose a compartment ---------------------------------------------------------------------


@page
@require_GET
def cabinets(request: HttpRequest) -> HttpResponse:
    return render(request, "web/cabinets.html", {"cabinets": selectors.cabinets_with_free_count()})


@page
@require_http_methods(["GET", "POST"])
def cabinet_detail(request: HttpRequest, cabinet_id: int) -> HttpResponse:
    cabinet = get_object_or_404(Cabinet, pk=cabinet_id)
    groups = selectors.free_compartments_by_size(cabinet=cabinet)
    compartments = [c for group in groups for c in group.compartments]
    quote_ = None
    if request.method == "POST":
        form = RentForm(request.POST, compartments=compartments)
        if form.is_valid():
            data = form.cleaned_data
            try:
                if request.POST.get("action") == "quote":
                    size = next(c.size for c in compartments if c.pk == data["compartment"])
                    quote_ = price_quote(size=size, hours=data["hours"], max_hours=settings.ORDER_MAX_HOURS)
                else:
                    order = order_create_rental(
                        user=request.user, compartment_id=data["compartment"], hours=data["hours"]
                    )
                    return redirect("web:checkout", order_no=order.order_no)
            except DomainError as exc:
                add_domain_error(form, exc)
    else:
        initial = {"compartment": request.GET.get("compartment"), "hours": request.GET.get("hours") or 1}
        form = RentForm(initial=initial, compartments=compartments)
    context = {
        "cabinet": cabinet,
        "groups": groups,
        "form": form,
        "selected": str(form["compartment"].value() or ""),
        "quote": quote_,
        "quote_total": selectors.yuan(quote_.amount_fen) if quote_ else "",
        "max_hours": settings.ORDER_MAX_HOURS,
    }
    return render(request, "web/cabinet.html", context, status=400 if form.errors else 200)


class QuoteQuery(RentalHoursMixin, StrictQuerySerializer):
    compartment = serializers.IntegerField(min_value=1, max_value=2**63 - 1)


def _json_error(code: str, message: str, details: dict | None = None, *, status: int) -> JsonResponse:
    """The API's one error shape, for the pages' JSON endpoints too."""
    return JsonResponse(error_body(code, message, details), status=status)


def json_endpoint(view):
    """The pages' JSON endpoints: signed-out callers get 401 in the one error shape (not the
    sign-in page, which a script cannot show)."""

    @wraps(view)
    def wrapper(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        if not request.user.is_authenticated:
            return _json_error("not_authenticated", "Sign in first.", status=401)
        return view(request, *args, **kwargs)

    return wrapper


@json_endpoint
@require_GET
def quote_json(request: HttpRequest) -> JsonResponse:
    """The server's price for the hours selector (JavaScript); reserves nothing."""
    query = QuoteQuery(data=request.GET.dict())
    if not query.is_valid():
        return _json_error(
            "invalid_input", "Choose a compartment and a whole number of hours.", query.errors, status=400
        )
    compartment = Compartment.objects.filter(pk=query.validated_data["compartment"]).first()
    if compartment is None:
        return _json_error("not_found", "Compartment not found.", status=404)
    try:
        found = price_quote(
            size=compartment.size, hours=query.validated_data["hours"], max_hours=settings.ORDER_MAX_HOURS
        )
    except DomainError as exc:
        return _json_error(exc.code, exc.message, exc.details, status=exc.http_status)
    return JsonResponse(
        {
            "amount_fen": found.amount_fen,
            "total": selectors.yuan(found.amount_fen),
            "hours": found.hours,
            "billed_hours": found.billed_hours,
        }
    )


# --- checkout and the waiting page -------------------------------------------------------------


def _openid(user, channel: str) -> str:
    if channel not in (Channel.WECHAT_JSAPI, Channel.WALLYT_JSAPI):
        return ""
    identity = getattr(user, "wechat", None)
    return identity.openid if identity else ""


def _result_url(order: Order) -> str:
    return f"{reverse('web:result')}?{urlencode({'order': order.order_no})}"


def _after_start(request: HttpRequest, order: Order, payment: Payment) -> HttpResponse:
    """Where the payer goes once the gateway has the trade."""
    if payment.status not in Payment.OPEN:  # the wallet settles at once
        return redirect(_result_url(order))
    wait_url = request.build_absolute_uri(reverse("web:wait", args=[order.order_no]))
    if payment.prepay.get("pay_url"):  # Alipay page / WAP
        return redirect(payment.prepay["pay_url"])
    if payment.prepay.get("h5_url"):  # WeChat H5: WeChat sends the payer back to redirect_url
        h5_url = payment.prepay["h5_url"]
        return redirect(f"{h5_url}{'&' if '?' in h5_url else '?'}redirect_url={quote(wait_url, safe='')}")
    return redirect("web:wait", order_no=order.order_no)


def _finished(order: Order) -> bool:
    return order.status != Order.Status.PENDING_PAYMENT or selectors.order_is_expired(order)


@page
@require_http_methods(["GET", "POST"])
@throttle_page("payment_create")
def checkout(request: HttpRequest, order_no: str) -> HttpResponse:
    order = selectors.order_for_user(user=request.user, order_no=order_no)
    if _finished(order):
        return redirect(_result_url(order))
    allow_wallet = order.kind != Order.Kind.WALLET_TOPUP
    balance = selectors.wallet_balance_fen(user=request.user)
    offer = channel_offer(
        has_wechat=hasattr(request.user, "wechat"),
        is_topup=not allow_wallet,
        balance_fen=balance,
        amount_fen=order.amount_fen,
    )
    form = CheckoutForm(request.POST if request.method == "POST" else None, offer=offer)
    if request.method == "POST" and form.is_valid():
        channel = form.cleaned_data["channel"]
        start = payments.PaymentStart(
            order_no=order.order_no,
            channel=channel,
            openid=_openid(request.user, channel),
            client_ip=request.META.get("REMOTE_ADDR"),
        )
        try:
            payment = payments.payment_start(user=request.user, request=start)
        except DomainError as exc:
            if exc.code == "order_expired":
                return redirect(_result_url(order))
            if "openid" in exc.details:  # a mini-program channel, and no WeChat identity
                form.add_error("channel", "This way needs a WeChat sign-in: sign out and sign in with WeChat.")
            else:
                add_domain_error(form, exc)
        else:
            return _after_start(request, order, payment)
    open_payment = next(iter(payments.payment_open_for_order(order)), None)
    context = {
        "order": order,
        "amount": selectors.yuan(order.amount_fen),
        "form": form,
        "open_payment": open_payment,
        "open_channel": channel_name(open_payment.channel) if open_payment else "",
        "balance": selectors.yuan(balance),
        "balance_enough": balance >= order.amount_fen,
        "allow_wallet": allow_wallet,
        "offer": offer,
        "minutes_left": max(int((order.expires_at - timezone.now()).total_seconds() // 60), 0),
    }
    return render(request, "web/checkout.html", context, status=400 if form.errors else 200)


def _inline_qr(text: str) -> str:
    svg = qr_svg(text).decode()
    return mark_safe(re.sub(r"^<\?xml[^>]*\?>\s*", "", svg))  # noqa: S308 - our own SVG, no user markup


@page
@require_GET
def wait(request: HttpRequest, order_no: str) -> HttpResponse:
    order = selectors.order_for_user(user=request.user, order_no=order_no)
    payment = selectors.latest_payment(order)
    if _finished(order) or (payment and payment.status not in Payment.OPEN):
        return redirect(_result_url(order))
    if payment is None:
        return redirect("web:checkout", order_no=order.order_no)
    wait_url = request.build_absolute_uri(reverse("web:wait", args=[order.order_no]))
    cashier_url = ""
    if settings.SANDBOX_ENABLED and payment.gateway in ("wechat", "wallyt"):
        cashier_url = f"{settings.SANDBOX_BASE_URL}/cashier/{payment.gateway}/{payment.payment_no}?" + urlencode(
            {"redirect": wait_url}
        )
    prepay = payment.prepay
    context = {
        "order": order,
        "payment": payment,
        "channel": channel_name(payment.channel),
        "amount": selectors.yuan(order.amount_fen),
        "qr": _inline_qr(prepay["code_url"]) if prepay.get("code_url") else "",
        "cashier_url": cashier_url,
        "pay_url": prepay.get("pay_url", ""),
        "h5_url": prepay.get("h5_url", ""),
        "pay_params": json.dumps(prepay["pay_params"], indent=2) if prepay.get("pay_params") else "",
        "sync_after": SYNC_AFTER_SECONDS,
    }
    return render(request, "web/wait.html", context)


def _status(order: Order) -> dict:
    payment = selectors.latest_payment(order)
    payment_status = payment.status if payment else ""
    done = _finished(order) or payment_status in (Payment.Status.FAILED, Payment.Status.CLOSED)
    return {
        "order_no": order.order_no,
        "order_status": order.status,
        "payment_status": payment_status,
        "expired": selectors.order_is_expired(order),
        "done": done,
        "result_url": _result_url(order),
    }


@json_endpoint
@require_GET
def status_json(request: HttpRequest, order_no: str) -> JsonResponse:
    """What the waiting page polls (session auth; the user's own order only)."""
    try:
        order = selectors.order_for_user(user=request.user, order_no=order_no)
    except Http404:
        return _json_error("not_found", "Order not found.", status=404)
    return JsonResponse(_status(order))


def _sync_open(request: HttpRequest, order: Order) -> str:
    """Ask the gateway about the order's open payments; returns the last refusal's message, if any."""
    message = ""
    for payment in payments.payment_open_for_order(order):
        try:
            payments.payment_sync(payment_no=payment.payment_no, actor=Actor.user(request.user))
        except DomainError as exc:
            message = exc.message
            logger.info("sync of %s from the web pages: %s", payment.payment_no, exc.message)
    return message


@json_endpoint
@require_POST
@throttle_page("payment_sync")
def sync(request: HttpRequest, order_no: str) -> HttpResponse:
    """No notification yet: ask the gateway how the open payment stands and apply the answer."""
    try:
        order = selectors.order_for_user(user=request.user, order_no=order_no)
    except Http404:
        return _json_error("not_found", "Order not found.", status=404)
    message = _sync_open(request, order)
    order.refresh_from_db()
    if request.headers.get("Accept", "").startswith("application/json"):
        return JsonResponse({**_status(order), "message": message})
    if message:
        messages.warning(request, message)
    return redirect("web:wait", order_no=order.order_no)


# --- result, door, cancel, retry ----------------------------------------------------------------


@page
@require_GET
def result(request: HttpRequest) -> HttpResponse:
    """Where every payment ends (Alipay's return lands here too, with outTradeNo/orderNo/status).
    The query's status is never trusted: the page shows what our records say."""
    order_no = request.GET.get("orderNo") or request.GET.get("order") or ""
    if order_no:
        order = selectors.order_for_user(user=request.user, order_no=order_no[:32])
    elif request.GET.get("outTradeNo"):
        payment = get_object_or_404(
            Payment.objects.select_related("order"), payment_no=request.GET["outTradeNo"][:32], order__user=request.user
        )
        order = payment.order
    else:
        raise Http404("No order given.")
    payment = selectors.latest_payment(order)
    if selectors.order_is_expired(order) and payment and payment.status in Payment.OPEN:
        # paid at the last second? ask the gateway once before saying "expired"
        _sync_open(request, order)
        order.refresh_from_db()
        payment = selectors.latest_payment(order)
    expired = selectors.order_is_expired(order)
    pending = order.status == Order.Status.PENDING_PAYMENT
    if order.kind == Order.Kind.LOCKER_OVERTIME and order.status == Order.Status.PAID:
        # where the customer wants to be: their rental, completed (or its door still to open)
        rental, paid = order.parent, f"Overtime of ¥{selectors.yuan(order.amount_fen)} paid"
        if rental.completed_at:
            done = f"the door of compartment {rental.compartment.label} is opening. Your rental is complete."
            messages.success(request, f"{paid}: {done}")
        else:
            messages.success(request, f"{paid}.")
        return redirect(_result_url(rental))
    if pending and not expired:
        if payment is None:
            return redirect("web:checkout", order_no=order.order_no)
        if payment.status in Payment.OPEN:
            return redirect("web:wait", order_no=order.order_no)
    if expired:
        outcome = "expired"
    elif pending:
        outcome = "failed"
    elif order.status == Order.Status.CANCELLED:
        outcome = "cancelled"
    elif order.status == Order.Status.REFUNDED:
        outcome = "refunded"  # paid, then every fen given back: no rental, no time left
    else:
        outcome = "paid"
    now = timezone.now()
    code = pickup_codes_active(references=[order.order_no]).get(order.order_no)
    clock = rental_clock(order, code=code, now=now)
    overtime = None
    if clock.door == "overdue":  # what opening will ask for (the order itself is made when asked)
        overtime = overtime_since(size=order.compartment.size, rental_ends_at=order.rental_ends_at, at=now)
    charge = selectors.order_charges([order])[order.pk]  # Pay Score: what WeChat billed or collected
    refunds = selectors.order_refunds(order)
    context = {
        "order": order,
        "payment": payment,
        "channel": channel_name(payment.channel) if payment else "",
        "outcome": outcome,
        "amount": selectors.yuan(order.amount_fen),
        "charge": charge,
        "pickup_code": code.code if code else "",
        "time_left": selectors.duration_text(order.rental_ends_at - now) if order.rental_ends_at else "",
        "rental_over": bool(order.rental_ends_at and order.rental_ends_at <= now),
        "running": clock.time_left_seconds is not None,
        "refunds": refunds,
        "refunded": selectors.refunded_text(refunds),
        "balance": selectors.yuan(selectors.wallet_balance_fen(user=request.user)),
        "clock": clock,
        "overtime": overtime,
        "overtime_total": selectors.yuan(overtime.amount_fen) if overtime else "",
        "overtime_daily_cap": selectors.yuan(overtime.daily_cap_fen) if overtime else "",
    }
    return render(request, "web/result.html", context)


@page
@require_POST
def open_door(request: HttpRequest, order_no: str) -> HttpResponse:
    order = selectors.order_for_user(user=request.user, order_no=order_no)
    try:
        purpose = order_open_door(order_no=order.order_no, user=request.user)
    except OvertimeDue as due:
        messages.info(request, due.message)
        return redirect("web:checkout", order_no=due.details["order_no"])
    except DomainError as exc:
        messages.error(request, exc.message)
    else:
        done = " Your rental is complete: take everything with you." if purpose == DoorPurpose.PICKUP else ""
        messages.success(request, f"The door of compartment {order.compartment.label} is opening.{done}")
    return redirect(_result_url(order))


def _cancel(request: HttpRequest, order: Order, *, reason: str) -> bool:
    """Close the order's open payments at the gateway first, then cancel (as the API's cancel does).
    A payment that turns out to be paid wins: the order is then paid."""
    actor = Actor.user(request.user)
    try:
        order_cancel_by_user(order_id=order.pk, actor=actor, reason=reason)
    except DomainError as exc:
        messages.error(request, exc.message)
        return False
    return True


@page
@require_POST
def cancel(request: HttpRequest, order_no: str) -> HttpResponse:
    order = selectors.order_for_user(user=request.user, order_no=order_no)
    if _cancel(request, order, reason="cancelled by user"):
        messages.info(request, f"Order {order.order_no} is cancelled.")
    return redirect(_result_url(order))


@page
@require_POST
def retry(request: HttpRequest, order_no: str) -> HttpResponse:
    """ "Try again": an unpaid order is cancelled (its compartment freed), then back to choosing."""
    order = selectors.order_for_user(user=request.user, order_no=order_no)
    if order.status == Order.Status.PENDING_PAYMENT:
        reason = "expired" if selectors.order_is_expired(order) else "cancelled by user to try again"
        if not _cancel(request, order, reason=reason):
            return redirect(_result_url(order))
    if order.kind == Order.Kind.WALLET_TOPUP:
        return redirect("web:wallet")
    if order.kind == Order.Kind.LOCKER_OVERTIME:  # back to the rental: opening asks for the overtime anew
        return redirect(_result_url(order.parent))
    url = reverse("web:cabinet", args=[order.compartment.cabinet_id])
    return redirect(f"{url}?{urlencode({'compartment': order.compartment_id, 'hours': order.hours})}")


@page
@require_POST
@throttle_page("payment_sync")
def payment_change(request: HttpRequest, order_no: str, payment_no: str) -> HttpResponse:
    """Close the open payment so that the order can be paid another way."""
    order = selectors.order_for_user(user=request.user, order_no=order_no)
    payment = get_object_or_404(order.payments, payment_no=payment_no)
    try:
        payments.payment_close(payment_no=payment.payment_no, actor=Actor.user(request.user), reason="changed method")
    except DomainError as exc:
        messages.error(request, exc.message)
        return redirect(_result_url(order))
    return redirect("web:checkout", order_no=order.order_no)


# --- wallet ------------------------------------------------------------------------------------


@page
@require_http_methods(["GET", "POST"])
@throttle_page("topup")
def wallet(request: HttpRequest) -> HttpResponse:
    form = TopupForm(request.POST if request.method == "POST" else None)
    if request.method == "POST" and form.is_valid():
        try:
            order = order_create_topup(user=request.user, amount_fen=form.cleaned_data["amount"])
        except DomainError as exc:
            add_domain_error(form, exc, "amount")
        else:
            return redirect("web:checkout", order_no=order.order_no)
    context = {
        "form": form,
        "balance": selectors.yuan(selectors.wallet_balance_fen(user=request.user)),
        "ledger": selectors.wallet_ledger(user=request.user),
    }
    return render(request, "web/wallet.html", context, status=400 if form.errors else 200)
