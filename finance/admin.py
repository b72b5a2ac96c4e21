"""Admin for bill reconciliation: runs (read-only) and discrepancies with the finance workflow, and the
back office's finance pages (dashboard, settlement, audit log, export), mounted under the refund
queue's URLs (``/admin/refunds/refund/...``). Only finance sees
these pages (``refunds.export_finance`` or ``refunds.approve_refund``); every action goes through
``finance.bills_workflow`` (locked, re-checked, audited with the acting user).
"""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.db.models import QuerySet
from django.http import HttpRequest
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString, mark_safe

from core.admin import EventInline, ReadOnlyAdmin, data_html, ident_html, name_html, when_html
from core.errors import DomainError
from core.money import format_yuan
from finance.backoffice.urls import backoffice_urls
from finance.bills import FIGURES
from finance.bills_workflow import (
    bill_discrepancy_assign,
    bill_discrepancy_auto_repair,
    bill_discrepancy_resolve,
    is_finance,
)
from finance.models import BillDiscrepancy, BillDiscrepancyEvent, BillRun
from payments.admin import GatewayFilter
from payments.models import Payment
from refunds.admin import RefundAdmin
from refunds.models import Refund

MAX_PER_ACTION = 100

RefundAdmin.url_providers.append(backoffice_urls)


class FinanceOnly:
    """View and act only with a finance permission (superusers have every permission)."""

    def has_module_permission(self, request: HttpRequest) -> bool:
        return is_finance(request.user)

    def has_view_permission(self, request: HttpRequest, obj=None) -> bool:
        return is_finance(request.user)

    def has_finance_permission(self, request: HttpRequest) -> bool:
        return is_finance(request.user)


class ResolveForm(forms.Form):
    required_css_class = "required"
    note = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 3, "cols": 60}),
        max_length=2000,
        help_text="Required: what was done, kept with the discrepancy in its audit trail.",
    )


SUBJECTS = {"payment": "a payment", "refund": "a refund", "total": "a day total"}
STATUS_LABELS = {**dict(Payment.Status.choices), **dict(Refund.Status.choices)}


def status_word(status: str) -> str:
    """A payment's or refund's status as a bill or our row states it, by its label ("Succeeded")."""
    return STATUS_LABELS.get(status, status.replace("_", " ").capitalize())


def side_html(amount_fen: int | None, status: str) -> SafeString:
    """One side of a discrepancy: "¥15.00 · Succeeded", or "none" when that side has nothing."""
    if amount_fen is None and not status:
        return format_html('<span class="bo-quiet">{}</span>', "none")
    parts = [format_html('<span class="bo-money">{}</span>', format_yuan(amount_fen))] if amount_fen is not None else []
    if status:
        parts.append(format_html("{}", status_word(status)))
    return format_html_join(mark_safe(" &middot; "), "{}", ((p,) for p in parts))


class BillDiscrepancyEventInline(EventInline):
    model = BillDiscrepancyEvent
    status_labels = dict(BillDiscrepancy.Status.choices)


@admin.register(BillRun)
class BillRunAdmin(FinanceOnly, ReadOnlyAdmin):
    # fits a list at 1366 px: the day and gateway, status and attempts, when, what it counted
    list_display = ("run", "status_cell", "times", "counts_shown")
    list_display_links = None
    list_filter = (GatewayFilter, "status", "bill_date")
    date_hierarchy = "bill_date"

    @admin.display(description="bill", ordering="bill_date")
    def run(self, obj: BillRun) -> SafeString:
        link = reverse("admin:finance_billrun_change", args=[obj.pk])
        return format_html(
            '<a href="{}">{}</a><span class="bo-sub">{}</span>', link, obj.bill_date.isoformat(), obj.gateway_label
        )

    @admin.display(description="status", ordering="status")
    def status_cell(self, obj: BillRun) -> SafeString:
        tries = f"{obj.attempts} attempt{'s' if obj.attempts != 1 else ''}"
        error = (
            format_html('<span class="bo-sub bo-warn bo-clip" title="{}">{}</span>', obj.error, obj.error)
            if obj.error
            else ""
        )
        return format_html('{}<span class="bo-sub bo-quiet">{}</span>{}', obj.get_status_display(), tries, error)

    @admin.display(description="started / finished", ordering="started_at")
    def times(self, obj: BillRun) -> SafeString:
        return format_html("{}<br>{}", when_html(obj.started_at), when_html(obj.finished_at))

    @admin.display(description="counts")
    def counts_shown(self, obj: BillRun) -> SafeString:
        return data_html(obj.counts)

    @admin.display(description="gateway")
    def gateway_shown(self, obj: BillRun) -> str:
        return obj.gateway_label

    @admin.display(description="settlement check (the bill's own totals against ours)")
    def totals_shown(self, obj: BillRun) -> SafeString:
        """The bill's totals, ours on its basis and the sum of its lines, per figure, in yuan."""
        totals = obj.totals or {}
        if not totals:
            return format_html("{}", "not checked yet")
        sides = [("bill", "the bill says"), ("ours", "ours"), ("lines", "its lines add up to")]
        head = format_html_join("", '<th scope="col" class="num">{}</th>', ((label,) for _, label in sides))

        def cell(side: str, figure: str) -> str:
            value = (totals.get(side) or {}).get(figure)
            return "-" if value is None else format_yuan(value)

        rows = format_html_join(
            "",
            '<tr{}><th scope="row">{}</th><td class="num">{}</td><td class="num">{}</td><td class="num">{}</td></tr>',
            (
                (
                    format_html(' class="{}"', "bo-warn") if figure in (totals.get("mismatches") or []) else "",
                    figure,
                    *(cell(side, figure) for side, _ in sides),
                )
                for figure in FIGURES
            ),
        )
        stated = "" if totals.get("stated", True) else format_html("<p>{}</p>", "The bill states no totals.")
        return format_html(
            '<table class="bo-table bo-totals"><thead><tr><th></th>{}</tr></thead><tbody>{}</tbody></table>{}',
            head,
            rows,
            stated,
        )


@admin.register(BillDiscrepancy)
class BillDiscrepancyAdmin(FinanceOnly, ReadOnlyAdmin):
    # fits a list at 1366 px: the day and gateway, what differs (over its reference), ours and the
    # bill's side, where it stands, when it was last seen
    list_display = ("day", "what", "sides", "state", "seen")
    list_display_links = None
    list_filter = (
        "status",
        "kind",
        GatewayFilter,
        "subject",
        "auto_repaired",
        "bill_date",
        ("assigned_to", admin.RelatedOnlyFieldListFilter),
    )
    search_fields = ("reference",)
    date_hierarchy = "bill_date"
    list_select_related = ("assigned_to",)
    inlines = [BillDiscrepancyEventInline]
    actions = ("assign_to_me", "resolve_with_note", "auto_repair")

    @admin.display(description="day", ordering="bill_date")
    def day(self, obj: BillDiscrepancy) -> SafeString:
        return format_html(
            '<span class="bo-nowrap">{}</span><span class="bo-sub">{}</span>',
            obj.bill_date.isoformat(),
            obj.gateway_label,
        )

    @admin.display(description="what differs", ordering="kind")
    def what(self, obj: BillDiscrepancy) -> SafeString:
        link = reverse("admin:finance_billdiscrepancy_changelist") + f"{obj.pk}/change/"
        return format_html(
            '<a href="{}">{}</a><span class="bo-sub">{} {}</span>',
            link,
            obj.get_kind_display(),
            obj.subject,
            ident_html(obj.reference),
        )

    @admin.display(description="ours / the bill")
    def sides(self, obj: BillDiscrepancy) -> SafeString:
        return format_html(
            '<span class="bo-quiet">ours</span> {}<br><span class="bo-quiet">bill</span> {}',
            side_html(obj.our_amount_fen, obj.our_status),
            side_html(obj.their_amount_fen, obj.their_status),
        )

    @admin.display(description="status", ordering="status")
    def state(self, obj: BillDiscrepancy) -> SafeString:
        notes = []
        if obj.assigned_to_id:
            name = obj.assigned_to.get_username()
            notes.append(format_html('<span class="bo-sub">to {}</span>', name_html(name)))
        if obj.auto_repaired:
            notes.append(format_html('<span class="bo-sub bo-quiet">{}</span>', "auto-repaired"))
        return format_html("{}{}", obj.get_status_display(), format_html_join("", "{}", ((n,) for n in notes)))

    @admin.display(description="last seen", ordering="last_seen")
    def seen(self, obj: BillDiscrepancy) -> SafeString:
        return when_html(obj.last_seen)

    @admin.display(description="gateway")
    def gateway_shown(self, obj: BillDiscrepancy) -> str:
        return obj.gateway_label

    # the detail page: each side as the list shows it, statuses by label, no run-internal token
    exclude = ("seen_token",)

    @admin.display(description="subject")
    def subject_shown(self, obj: BillDiscrepancy) -> str:
        return SUBJECTS.get(obj.subject, obj.subject)

    @admin.display(description="ours")
    def our_amount_fen_shown(self, obj: BillDiscrepancy) -> SafeString:
        return side_html(obj.our_amount_fen, obj.our_status)

    @admin.display(description="the bill")
    def their_amount_fen_shown(self, obj: BillDiscrepancy) -> SafeString:
        return side_html(obj.their_amount_fen, obj.their_status)

    def get_fields(self, request, obj=None):
        # a side's status is shown with its amount ("¥15.00 · Succeeded"), not again on its own line
        return [f for f in super().get_fields(request, obj) if f not in ("our_status", "their_status")]

    @admin.action(description="Assign to me", permissions=["finance"])
    def assign_to_me(self, request: HttpRequest, queryset: QuerySet[BillDiscrepancy]) -> None:
        done = 0
        for d in queryset[:MAX_PER_ACTION]:
            try:
                bill_discrepancy_assign(discrepancy_id=d.pk, user=request.user)
                done += 1
            except DomainError as exc:
                self.message_user(request, f"{d}: {exc.message}", messages.ERROR)
        self.message_user(request, f"{done} discrepancy(ies) assigned to you.", messages.SUCCESS)

    @admin.action(description="Resolve with a note…", permissions=["finance"])
    def resolve_with_note(self, request: HttpRequest, queryset: QuerySet[BillDiscrepancy]):
        chosen = list(queryset[:MAX_PER_ACTION])
        for d in chosen:  # each side as people read it: "¥124.00 · Succeeded", "none"
            d.ours = side_html(d.our_amount_fen, d.our_status)
            d.theirs = side_html(d.their_amount_fen, d.their_status)
        form = ResolveForm(request.POST if request.POST.get("confirm") == "yes" else None)
        if form.is_bound and form.is_valid():
            done = 0
            for d in chosen:
                try:
                    bill_discrepancy_resolve(discrepancy_id=d.pk, user=request.user, note=form.cleaned_data["note"])
                    done += 1
                except DomainError as exc:
                    self.message_user(request, f"{d}: {exc.message}", messages.ERROR)
            self.message_user(request, f"{done} discrepancy(ies) resolved.", messages.SUCCESS)
            return None
        context = {
            **self.admin_site.each_context(request),
            "title": "Resolve bill discrepancies",
            "discrepancies": chosen,
            "form": form,
            "action": "resolve_with_note",
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
            "opts": self.model._meta,
        }
        return TemplateResponse(request, "admin/finance/billdiscrepancy/resolve.html", context)

    @admin.action(description="Auto-repair: ask the gateway and re-check", permissions=["finance"])
    def auto_repair(self, request: HttpRequest, queryset: QuerySet[BillDiscrepancy]) -> None:
        for d in queryset[:MAX_PER_ACTION]:
            try:
                _, message = bill_discrepancy_auto_repair(discrepancy_id=d.pk, user=request.user)
            except DomainError as exc:
                self.message_user(request, f"{d}: {exc.message}", messages.ERROR)
                continue
            level = messages.SUCCESS if message == "repaired" else messages.WARNING
            self.message_user(request, f"{d}: {message}", level)
