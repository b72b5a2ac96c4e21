""" "My orders" and the refund request form (refunds.services does the checking)."""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from core.errors import DomainError
from core.throttling import throttle_page
from refunds.models import Refund
from refunds.services import refund_request
from web import selectors
from web.forms import RefundRequestForm, add_domain_error
from web.views import page


def _render_orders(request: HttpRequest, *, failed_form: RefundRequestForm | None = None, failed_order: str = ""):
    rows = selectors.order_rows_for_user(user=request.user)
    for row in rows:
        bound = failed_form if failed_form is not None and row.order.order_no == failed_order else None
        row.refund_form = bound or RefundRequestForm(auto_id=f"id_{row.order.order_no}_%s")  # type: ignore[attr-defined]
    return render(request, "web/orders.html", {"rows": rows}, status=400 if failed_form is not None else 200)


@page
@require_GET
def orders(request: HttpRequest) -> HttpResponse:
    return _render_orders(request)


# what happens next to a refund just asked for, in the customer's words
REFUND_NEXT = {
    Refund.Status.REQUESTED: "it waits for our staff to approve it",
    Refund.Status.APPROVED: "approved, on its way back to you",
    Refund.Status.PROCESSING: "approved, on its way back to you",
    Refund.Status.SUCCEEDED: "done, the money is back",
}


@page
@require_POST
@throttle_page("refund")
def refund(request: HttpRequest, order_no: str) -> HttpResponse:
    order = selectors.order_for_user(user=request.user, order_no=order_no)
    form = RefundRequestForm(request.POST, auto_id=f"id_{order.order_no}_%s")
    if form.is_valid():
        try:
            created = refund_request(
                order_no=order.order_no,
                amount_fen=form.cleaned_data["amount"],
                reason=form.cleaned_data["reason"],
                requested_by=request.user,
            )
        except DomainError as exc:
            add_domain_error(form, exc)
        else:
            messages.success(
                request,
                f"Refund {created.refund_no} of ¥{selectors.yuan(created.amount_fen)} requested: "
                f"{REFUND_NEXT.get(created.status, created.get_status_display().lower())}.",
            )
            return redirect("web:orders")
    return _render_orders(request, failed_form=form, failed_order=order.order_no)
