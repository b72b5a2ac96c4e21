"""Admin for bill reconciliation: runs (read-only) and discrepancies with the finance workflow.

Wired by ``from refunds import admin_bills  # noqa`` in ``refunds/admin.py``. Only finance sees
these pages (``refunds.export_finance`` or ``refunds.approve_refund``); every action goes through
``refunds.bills_workflow`` (locked, re-checked, audited with the acting user).
"""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.db.models import QuerySet
from django.http import HttpRequest
from django.template.response import TemplateResponse

from config.admin import ReadOnlyAdmin, ReadOnlyInline
from config.errors import DomainError
from refunds.bills_workflow import (
    bill_discrepancy_assign,
    bill_discrepancy_auto_repair,
    bill_discrepancy_resolve,
    is_finance,
)
from refunds.models import BillDiscrepancy, BillDiscrepancyEvent, BillRun

MAX_PER_ACTION = 100


class FinanceOnly:
    """View and act only with a finance permission (superusers have every permission)."""

    def has_module_permission(self, request: HttpRequest) -> bool:
        return is_finance(request.user)

    def has_view_permission(self, request: HttpRequest, obj=None) -> bool:
        return is_finance(request.user)

    def has_finance_permission(self, request: HttpRequest) -> bool:
        return is_finance(request.user)


class ResolveForm(forms.Form):
    note = forms.CharField(widget=forms.Textarea(attrs={"rows": 3, "cols": 60}), max_length=2000)


class BillDiscrepancyEventInline(ReadOnlyInline):
    model = BillDiscrepancyEvent
    fields = ("created_at", "action", "from_status", "to_status", "actor", "reason")
    readonly_fields = fields


@admin.register(BillRun)
class BillRunAdmin(FinanceOnly, ReadOnlyAdmin):
    list_display = ("bill_date", "gateway", "status", "attempts", "started_at", "finished_at", "counts", "error")
    list_filter = ("gateway", "status", "bill_date")
    date_hierarchy = "bill_date"


@admin.register(BillDiscrepancy)
class BillDiscrepancyAdmin(FinanceOnly, ReadOnlyAdmin):
    list_display = (
        "bill_date",
        "gateway",
        "kind",
        "subject",
        "reference",
        "our_amount_fen",
        "their_amount_fen",
        "our_status",
        "their_status",
        "status",
        "assigned_to",
        "auto_repaired",
        "last_seen",
    )
    list_filter = (
        "status",
        "kind",
        "gateway",
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
        return TemplateResponse(request, "admin/refunds/billdiscrepancy/resolve.html", context)

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
