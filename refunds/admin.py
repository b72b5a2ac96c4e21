"""The refund queue: filters, bulk approve / reject with a confirmation page, abnormal-refund
resolution and the detail page (order, payment, previous refunds, full audit trail).

Nothing here assigns a status: every decision is a call to ``refunds.services`` (which checks the
permission and maker-checker again and writes the audit event with the user, time and note).
"""

from __future__ import annotations

from collections.abc import Callable

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import AdminSite, helpers
from django.db.models import QuerySet, Sum
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import URLPattern, reverse
from django.utils.html import format_html
from django.utils.safestring import SafeString

from core.admin import EventAdmin, EventInline, YuanMixin, ident_html, name_html, time_text, when_html
from core.audit import Actor
from core.errors import DomainError
from core.money import format_yuan, parse_yuan
from refunds.models import Refund, RefundEvent
from refunds.refund_page import gateway_answer
from refunds.services import (
    refund_apply_abnormal,
    refund_approve,
    refund_reject,
    refund_resend,
    refund_resolve_abnormal,
    refund_sync,
)
from refunds.timeline import TIMELINE_PERMS, payment_timeline

MAX_BULK = 100


class AmountRangeFilter(admin.ListFilter):
    """``amount_from`` / ``amount_to`` typed in by the user, in yuan (``12.50``); compared in fen.
    A value that is not an amount is ignored (the list stays unfiltered by it)."""

    title = "amount (¥)"
    template = "admin/refunds/amount_range_filter.html"
    params = {"amount_from": "amount_fen__gte", "amount_to": "amount_fen__lte"}

    def __init__(self, request, params, model, model_admin):
        super().__init__(request, params, model, model_admin)
        self.values: dict[str, str] = {}
        self.lookups: dict[str, int] = {}
        for name, lookup in self.params.items():
            raw = params.pop(name, None)
            value = raw[-1] if isinstance(raw, list) else raw
            if value is None or not str(value).strip():
                continue
            self.values[name] = str(value).strip()
            try:
                fen = parse_yuan(str(value))
            except ValueError:
                continue
            if fen >= 0:
                self.lookups[lookup] = fen
        self.other_params = [(k, v) for k, v in request.GET.items() if k not in self.params and k != "p"]

    def has_output(self) -> bool:
        return True

    def choices(self, changelist):
        return []

    def expected_parameters(self) -> list[str]:
        return list(self.params)

    def queryset(self, request, queryset: QuerySet) -> QuerySet:
        return queryset.filter(**self.lookups) if self.lookups else queryset


class GatewayUnknownFilter(admin.SimpleListFilter):
    """Processing refunds their gateway says it does not know (it never reached it): reconciliation sends them
    again after ``REFUND_RESEND_GRACE_SECONDS``; finance can too (action "Send again")."""

    title = "what the gateway knows"  # Django writes "By what the gateway knows"
    parameter_name = "gateway_unknown"

    def lookups(self, request, model_admin):
        return [("yes", "Sent, unknown to the gateway")]

    def queryset(self, request, queryset: QuerySet) -> QuerySet:
        if self.value() == "yes":
            return queryset.filter(status=Refund.Status.PROCESSING, gateway_unknown_since__isnull=False)
        return queryset


class RefundEventInline(EventInline):
    model = RefundEvent
    verbose_name_plural = "audit trail of this refund"
    status_labels = dict(Refund.Status.choices)


NOTE_HELP = "Required: it is kept with the decision in the audit trail."


class DecisionForm(forms.Form):
    required_css_class = "required"
    note = forms.CharField(max_length=200, widget=forms.Textarea(attrs={"rows": 3, "cols": 60}), help_text=NOTE_HELP)


class ResolveForm(forms.Form):
    required_css_class = "required"
    resolution = forms.ChoiceField(
        choices=[("retry", "Retry to the original route"), ("offline", "Mark as paid out offline")],
        widget=forms.RadioSelect,
    )
    note = forms.CharField(max_length=200, widget=forms.Textarea(attrs={"rows": 3, "cols": 60}), help_text=NOTE_HELP)


class _NoEcho(forms.TextInput):
    """Typed in, never sent back (a page shown again after an error does not carry it)."""

    def format_value(self, value):
        return None


class ApplyAbnormalForm(forms.Form):
    """WeChat's apply-abnormal-refund (PROTOCOLS F.2). The bank fields go to WeChat encrypted and are never
    shown again, stored or logged (the audit trail keeps the last four digits)."""

    destination = forms.ChoiceField(
        choices=[
            ("USER_BANK_CARD", "To the customer's debit card (one refund at a time)"),
            ("MERCHANT_BANK_CARD", "To our merchant account (we pay the customer ourselves)"),
        ],
        widget=forms.RadioSelect,
    )
    bank_type = forms.CharField(required=False, max_length=16, help_text="The bank's code, e.g. ICBC_DEBIT.")
    bank_account = forms.CharField(
        required=False, max_length=40, widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "off"})
    )
    real_name = forms.CharField(
        required=False, max_length=100, label="Card holder", widget=_NoEcho(attrs={"autocomplete": "off"})
    )
    note = forms.CharField(max_length=200, widget=forms.Textarea(attrs={"rows": 3, "cols": 60}))

    def __init__(self, *args, selected: int = 1, **kwargs):
        super().__init__(*args, **kwargs)
        self.selected = selected

    def clean(self):
        data = super().clean()
        if data.get("destination") == "USER_BANK_CARD":
            if self.selected != 1:
                raise forms.ValidationError("A customer's bank card is for one refund at a time.")
            for name in ("bank_type", "bank_account", "real_name"):
                if not data.get(name):
                    self.add_error(name, "Required for the customer's bank card.")
        return data


@admin.register(Refund)
class RefundAdmin(YuanMixin, admin.ModelAdmin):
    # fits a list at 1366 px: the refund's number over its order's, the channel, amount, status,
    # who asked and when
    list_display = ("refund_cell", "channel", "amount", "status", "requested")
    list_display_links = None  # the first column links the refund (and its order) itself
    list_filter = ("status", GatewayUnknownFilter, "payment__channel", "created_at", AmountRangeFilter, "source")
    search_fields = ("refund_no", "order__order_no", "payment__payment_no", "gateway_refund_id")
    date_hierarchy = "created_at"
    list_select_related = ("order", "payment", "requested_by", "approved_by")
    fieldsets = (
        (None, {"fields": ("refund_no", "status", "amount", "reason", "source", "order", "payment")}),
        ("Decision", {"fields": ("requested_by", "decision", "decision_note")}),
        (
            "At the gateway",
            {
                "fields": (
                    "gateway_refund_id_shown",
                    "gateway_state_shown",
                    "gateway_amounts",
                    "gateway_times",
                    "submitted_at",
                    "succeeded_at",
                    "last_synced_at",
                    "gateway_answer_json",
                )
            },
        ),
        ("Times", {"fields": ("created_at", "updated_at")}),
    )
    readonly_fields = (
        "amount",
        "decision",
        "gateway_refund_id_shown",
        "gateway_state_shown",
        "gateway_amounts",
        "gateway_times",
        "gateway_answer_json",
        "created_at",
        "updated_at",
    )
    inlines = [RefundEventInline]
    actions = (
        "approve_selected",
        "reject_selected",
        "resolve_abnormal",
        "apply_abnormal_refund",
        "sync_with_gateway",
        "resend_to_gateway",
    )
    change_form_template = "admin/refunds/refund/change_form.html"
    change_list_template = "admin/refunds/refund/change_list.html"

    # --- permissions: read-only model, decisions through actions ----------------------------------

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_approve_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("refunds.approve_refund")

    def has_resolve_abnormal_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("refunds.resolve_abnormal_refund")

    def has_resend_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("refunds.resend_refund")

    # pages a higher app mounts under /admin/refunds/refund/ (finance's back office: finance/admin.py)
    url_providers: list[Callable[[AdminSite], list[URLPattern]]] = []

    def get_urls(self) -> list[URLPattern]:
        mounted = [url for provider in self.url_providers for url in provider(self.admin_site)]
        return mounted + super().get_urls()

    # --- columns -------------------------------------------------------------------------------------

    @admin.display(description="amount", ordering="amount_fen")
    def amount(self, obj: Refund) -> str:
        return format_yuan(obj.amount_fen)

    @admin.display(description="channel", ordering="payment__channel")
    def channel(self, obj: Refund) -> str:
        return obj.payment.get_channel_display()

    @admin.display(description="refund / order", ordering="refund_no")
    def refund_cell(self, obj: Refund) -> SafeString:
        return format_html(
            '{}<span class="bo-sub">{}</span>',
            ident_html(obj.refund_no, href=reverse("admin:refunds_refund_change", args=[obj.pk])),
            ident_html(obj.order.order_no, href=reverse("admin:orders_order_change", args=[obj.order_id])),
        )

    @admin.display(description="requested", ordering="created_at")
    def requested(self, obj: Refund) -> SafeString:
        who = obj.requested_by.get_username() if obj.requested_by else obj.get_source_display().lower()
        return format_html('{}<span class="bo-sub">{}</span>', name_html(who), when_html(obj.created_at, seconds=False))

    @admin.display(description="decision")
    def decision(self, obj: Refund) -> str:
        """Who decided what, and when: "Rejected by finance at 2026-11-30 10:16:47 CST"."""
        if obj.decided_at is None:
            return "not decided yet" if obj.status == Refund.Status.REQUESTED else "-"
        verb = "Rejected" if obj.status == Refund.Status.REJECTED else "Approved"
        who = f"by {obj.approved_by.get_username()}" if obj.approved_by else "automatically"
        return f"{verb} {who} at {time_text(obj.decided_at)}"

    @admin.display(description="gateway refund id")
    def gateway_refund_id_shown(self, obj: Refund) -> str:
        text = gateway_answer(obj).refund_id_text
        return text if " " in text else ident_html(text)

    @admin.display(description="state at the gateway")
    def gateway_state_shown(self, obj: Refund) -> str:
        return gateway_answer(obj).state_text

    @admin.display(description="amounts the gateway gave")
    def gateway_amounts(self, obj: Refund) -> str:
        return gateway_answer(obj).amounts_text

    @admin.display(description="times the gateway gave")
    def gateway_times(self, obj: Refund) -> str:
        return gateway_answer(obj).times_text

    @admin.display(description="what the gateway said (latest first, secrets masked)")
    def gateway_answer_json(self, obj: Refund) -> str:
        shown = gateway_answer(obj)
        if not shown.answers:
            return "-"
        answers = shown.answers_json
        return format_html('<pre class="bo-json" id="bo-gateway-json">{}</pre>', answers)

    def change_view(self, request: HttpRequest, object_id: str, form_url: str = "", extra_context=None):
        refund = self.get_object(request, object_id)
        extra = dict(extra_context or {})
        if refund is not None and self.has_view_permission(request, refund):
            order, payment = refund.order, refund.payment
            extra.update(
                order=order,
                payment=payment,
                order_amount=format_yuan(order.amount_fen),
                payment_amount=format_yuan(payment.amount_fen),
                payment_refunded=format_yuan(payment.refunded_fen),
                other_refunds=list(
                    Refund.objects.filter(order=order).exclude(pk=refund.pk).select_related("payment").order_by("id")
                ),
                trail=payment_timeline(payment),
                timeline_url=reverse("admin:backoffice_payment_timeline", args=[payment.pk])
                if request.user.has_perms(TIMELINE_PERMS)
                else "",
                can_open_order=self._may_open(request, type(order)),
                can_open_payment=self._may_open(request, type(payment)),
                decision=self.decision(refund),
            )
        return super().change_view(request, object_id, form_url, extra_context=extra)

    # --- actions (each refund through the service; one failure never stops the others) ----------

    def _confirm(
        self, request: HttpRequest, queryset: QuerySet, *, action: str, title: str, form: forms.Form
    ) -> TemplateResponse:
        refunds = list(queryset.select_related("order", "payment", "requested_by")[:MAX_BULK])
        total = queryset.aggregate(s=Sum("amount_fen"))["s"] or 0
        context = {
            **self.admin_site.each_context(request),
            "title": title,
            "opts": self.model._meta,
            "action": action,
            "refunds": refunds,
            "count": queryset.count(),
            "total": format_yuan(total),
            "form": form,
            "too_many": queryset.count() > MAX_BULK,
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
            "maker_checker": [r for r in refunds if r.requested_by_id == request.user.pk],
        }
        return TemplateResponse(request, "admin/refunds/refund/confirm_action.html", context)

    def _run(self, request: HttpRequest, queryset: QuerySet, call, verb: str) -> None:
        done, failed = [], 0
        for refund in queryset.order_by("id")[:MAX_BULK]:
            try:
                call(refund)
            except DomainError as exc:
                failed += 1
                self.message_user(request, f"{refund.refund_no}: {exc.message} ({exc.code})", messages.ERROR)
            else:
                done.append(refund.refund_no)
        if done:
            self.message_user(request, f"{verb} {len(done)} refund(s): {', '.join(done)}.", messages.SUCCESS)
        if not done and not failed:
            self.message_user(request, "Nothing was changed.", messages.WARNING)

    @admin.action(description="Approve selected refunds", permissions=["approve"])
    def approve_selected(self, request: HttpRequest, queryset: QuerySet) -> HttpResponse | None:
        form = DecisionForm(request.POST if "confirm" in request.POST else None)
        if not form.is_valid():
            return self._confirm(request, queryset, action="approve_selected", title="Approve refunds", form=form)
        note = form.cleaned_data["note"]
        self._run(
            request,
            queryset,
            lambda r: refund_approve(refund_id=r.pk, approver=request.user, note=note),
            "Approved",
        )
        return None

    @admin.action(description="Reject selected refunds", permissions=["approve"])
    def reject_selected(self, request: HttpRequest, queryset: QuerySet) -> HttpResponse | None:
        form = DecisionForm(request.POST if "confirm" in request.POST else None)
        if not form.is_valid():
            return self._confirm(request, queryset, action="reject_selected", title="Reject refunds", form=form)
        note = form.cleaned_data["note"]
        self._run(
            request,
            queryset,
            lambda r: refund_reject(refund_id=r.pk, approver=request.user, note=note),
            "Rejected",
        )
        return None

    @admin.action(description="Resolve abnormal refunds (retry or paid offline)", permissions=["resolve_abnormal"])
    def resolve_abnormal(self, request: HttpRequest, queryset: QuerySet) -> HttpResponse | None:
        form = ResolveForm(request.POST if "confirm" in request.POST else None)
        if not form.is_valid():
            return self._confirm(
                request, queryset, action="resolve_abnormal", title="Resolve abnormal refunds", form=form
            )
        data = form.cleaned_data
        self._run(
            request,
            queryset,
            lambda r: refund_resolve_abnormal(
                refund_id=r.pk, staff=request.user, action=data["resolution"], note=data["note"]
            ),
            "Resolved" if data["resolution"] == "offline" else "Sent again",
        )
        return None

    @admin.action(description="Apply for an abnormal refund to a bank card (WeChat)", permissions=["resolve_abnormal"])
    def apply_abnormal_refund(self, request: HttpRequest, queryset: QuerySet) -> HttpResponse | None:
        request.sensitive_post_parameters = ["bank_account", "real_name"]  # kept out of error reports
        queryset = queryset.filter(status=Refund.Status.ABNORMAL)
        form = ApplyAbnormalForm(request.POST if "confirm" in request.POST else None, selected=queryset.count())
        if not form.is_valid():
            return self._confirm(
                request, queryset, action="apply_abnormal_refund", title="Apply for abnormal refunds", form=form
            )
        data = form.cleaned_data
        self._run(
            request,
            queryset,
            lambda r: refund_apply_abnormal(refund_id=r.pk, staff=request.user, **data),
            "Applied for",
        )
        return None

    @admin.action(description="Ask the gateway now (processing / abnormal)", permissions=["resolve_abnormal"])
    def sync_with_gateway(self, request: HttpRequest, queryset: QuerySet) -> None:
        self._run(
            request,
            queryset.filter(status__in=(Refund.Status.PROCESSING, Refund.Status.ABNORMAL)),
            lambda r: refund_sync(refund_id=r.pk, actor=Actor.user(request.user)),
            "Synced",
        )

    @admin.action(description="Send again to the gateway (processing; same refund number)", permissions=["resend"])
    def resend_to_gateway(self, request: HttpRequest, queryset: QuerySet) -> HttpResponse | None:
        queryset = queryset.filter(status=Refund.Status.PROCESSING)
        form = DecisionForm(request.POST if "confirm" in request.POST else None)
        if not form.is_valid():
            return self._confirm(
                request, queryset, action="resend_to_gateway", title="Send refunds to the gateway again", form=form
            )
        note = form.cleaned_data["note"]
        self._run(request, queryset, lambda r: refund_resend(refund_id=r.pk, staff=request.user, note=note), "Sent")
        return None


@admin.register(RefundEvent)
class RefundEventAdmin(EventAdmin):
    subject = "refund__refund_no"
    status_labels = dict(Refund.Status.choices)
    list_filter = ("action",)
    list_select_related = ("refund",)
    search_fields = ("refund__refund_no", "actor")
