"""Back-office pages inside Django admin. Each checks its own permission (403 otherwise); the admin
site's ``admin_view`` wrapper (see urls.py) sends anonymous and non-staff users to the login page."""

from __future__ import annotations

from decimal import Decimal

from django import forms
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, StreamingHttpResponse
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone

from core.admin import actor_names
from core.errors import DomainError
from core.money import format_yuan, parse_yuan
from finance.backoffice import auditlog, dashboard, exports
from orders.models import Order
from payments.models import Payment
from refunds.models import Refund
from refunds.services import refund_request, refundable_fen
from refunds.timeline import TIMELINE_PERMS, payment_timeline, status_label


def _require(request: HttpRequest, *perms: str) -> None:
    if not request.user.has_perms(perms):
        raise PermissionDenied


def _page(request: HttpRequest, admin_site, template: str, title: str, **context) -> TemplateResponse:
    return TemplateResponse(request, template, {**admin_site.each_context(request), "title": title, **context})


def dashboard_view(request: HttpRequest, admin_site) -> TemplateResponse:
    _require(request, "refunds.view_refund", "payments.view_payment")
    return _page(
        request, admin_site, "admin/finance/dashboard.html", "Finance dashboard", **dashboard.dashboard_context()
    )


def audit_log_view(request: HttpRequest, admin_site) -> TemplateResponse:
    sources = auditlog.visible_sources(request.user)
    if not sources:
        raise PermissionDenied
    form = auditlog.AuditFilter(request.GET or None)
    filters = form.cleaned_data if form.is_valid() else {}
    try:
        page = max(1, min(int(request.GET.get("page", "1")), 10_000))
    except ValueError:
        page = 1
    rows, has_next = auditlog.audit_log_page(auditlog.audit_log_query(sources, filters), page)
    names = actor_names({r["e_actor"] for r in rows})
    for r in rows:  # for people: statuses by label, people by name (the code stays in the title)
        r.update(
            from_label=status_label(r["e_kind"], r["e_from"]),
            to_label=status_label(r["e_kind"], r["e_to"]),
            actor_name=names.get(r["e_actor"], ""),
        )
    query = request.GET.copy()
    query.pop("page", None)
    return _page(
        request,
        admin_site,
        "admin/finance/audit_log.html",
        "Audit log",
        form=form,
        rows=rows,
        page=page,
        has_next=has_next,
        query=query.urlencode(),
        kinds=[s.kind for s in sources],
    )


def export_view(request: HttpRequest, admin_site) -> HttpResponse:
    _require(request, "refunds.export_finance")
    form = exports.ExportForm(request.GET or None)
    if not form.is_valid():
        return _page(
            request,
            admin_site,
            "admin/finance/export.html",
            "Export CSV",
            form=form,
            time_zone=timezone.get_current_timezone_name(),
        )
    data = form.cleaned_data
    name = f"{data['dataset']}_{data['date_from']:%Y%m%d}_{data['date_to']:%Y%m%d}.csv"
    response = StreamingHttpResponse(
        exports.export_rows(data["dataset"], data["date_from"], data["date_to"]), content_type="text/csv; charset=utf-8"
    )
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    return response


def payment_timeline_view(request: HttpRequest, admin_site, payment_id: int) -> TemplateResponse:
    _require(request, *TIMELINE_PERMS)
    payment = get_object_or_404(Payment.objects.select_related("order"), pk=payment_id)
    refunds = list(payment.refunds.order_by("id"))
    return _page(
        request,
        admin_site,
        "admin/refunds/payment_timeline.html",
        f"Timeline of payment {payment.payment_no}",
        payment=payment,
        refunds=refunds,
        rows=payment_timeline(payment, refunds=refunds),
        can_replay=request.user.has_perm("payments.replay_gatewaynotification"),
        amount=format_yuan(payment.amount_fen),
        refunded=format_yuan(payment.refunded_fen),
    )


class RefundRequestForm(forms.Form):
    order_no = forms.CharField(max_length=32, widget=forms.TextInput(attrs={"size": 36}))
    amount = forms.DecimalField(
        label="Amount (¥)",
        required=False,
        min_value=Decimal("0.01"),
        max_digits=12,
        decimal_places=2,
        help_text="In yuan, such as 12.50. Empty: everything still refundable.",
    )
    reason = forms.CharField(max_length=200, widget=forms.Textarea(attrs={"rows": 3, "cols": 60}))

    def clean_amount(self) -> int | None:
        value = self.cleaned_data.get("amount")
        return None if value is None else parse_yuan(value)


def request_refund_view(request: HttpRequest, admin_site) -> HttpResponse:
    """Staff ask for a refund of a customer's order (``refund_request`` with source "staff");
    finance then approves or rejects it in the refund queue."""
    _require(request, "refunds.request_refund")
    form = RefundRequestForm(request.POST if request.method == "POST" else request.GET or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            refund = refund_request(
                order_no=data["order_no"].strip(),
                amount_fen=data["amount"],
                reason=data["reason"],
                requested_by=request.user,
                source=Refund.Source.STAFF,
            )
        except DomainError as exc:
            messages.error(request, f"Refund not requested: {exc.message}")
        else:
            messages.success(request, f"Refund {refund.refund_no} of {format_yuan(refund.amount_fen)} requested.")
            return HttpResponseRedirect(reverse("admin:refunds_refund_change", args=[refund.pk]))
    order_no = (form.data.get("order_no") or "").strip() if form.is_bound else ""
    order = Order.objects.filter(order_no=order_no).first() if order_no else None
    payment = order.payments.filter(status=Payment.Status.SUCCEEDED, flag="").first() if order else None
    if request.method == "GET":
        form = RefundRequestForm(initial={"order_no": order_no})
    return _page(
        request,
        admin_site,
        "admin/refunds/request_refund.html",
        "Request a refund",
        form=form,
        order=order,
        payment=payment,
        refundable=format_yuan(refundable_fen(payment)) if payment else None,
        previous=list(order.refunds.order_by("id")) if order else [],
        now=timezone.now(),
    )
