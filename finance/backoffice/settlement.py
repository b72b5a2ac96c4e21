"""The settlement report in the back office: the page (figures, chart, bill checks) and its exports,
CSV (yuan and labels for people beside fen and codes for machines, a totals row, the bill checks)
and an Excel workbook (openpyxl: numbers, not text, so a spreadsheet can add them up). Finance only
(``refunds.export_finance`` or ``approve_refund``). Net settled counts the gateways' channels only:
wallet spending is internal and shown apart (see ``finance.settlement``).
"""

from __future__ import annotations

import csv
import io
from datetime import date, timedelta

from django import forms
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.http import urlencode
from openpyxl import Workbook
from openpyxl.styles import Font, PatternFill
from openpyxl.utils import get_column_letter

from core.money import format_yuan, yuan_decimal
from finance.backoffice.charts import bar_chart
from finance.bills import FIGURES
from finance.bills_workflow import is_finance
from finance.settlement import MAX_DAYS, BillCheck, Figures, SettlementReport, settlement_report
from payments.models import GATEWAY_LABELS, Channel

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
YUAN_FORMAT = '"¥"#,##0.00;-"¥"#,##0.00'
DEFAULT_DAYS = 7


def channel_label(channel: str) -> str:
    return Channel(channel).label if channel in Channel.values else channel


class SettlementForm(forms.Form):
    date_from = forms.DateField(label="From", widget=forms.DateInput(attrs={"type": "date"}))
    date_to = forms.DateField(label="To", widget=forms.DateInput(attrs={"type": "date"}), help_text="inclusive")

    def clean(self) -> dict:
        data = super().clean()
        start, end = data.get("date_from"), data.get("date_to")
        if start and end:
            if end < start:
                raise forms.ValidationError("The last day is before the first.")
            if (end - start).days >= MAX_DAYS:
                raise forms.ValidationError(f"At most {MAX_DAYS} days at once.")
        return data


def default_range(today: date) -> tuple[date, date]:
    return today - timedelta(days=DEFAULT_DAYS - 1), today


# --- the page ------------------------------------------------------------------------------------


def settlement_view(request: HttpRequest, admin_site) -> HttpResponse:
    if not is_finance(request.user):
        raise PermissionDenied
    today = timezone.localdate()
    start, end = default_range(today)
    form = SettlementForm(request.GET or {"date_from": start, "date_to": end})
    report = None
    if form.is_valid():
        report = settlement_report(date_from=form.cleaned_data["date_from"], date_to=form.cleaned_data["date_to"])
        wanted = request.GET.get("format", "")
        if wanted == "csv":
            return _download(settlement_csv(report), "text/csv; charset=utf-8", report, "csv")
        if wanted == "xlsx":
            return _download(settlement_xlsx(report), XLSX, report, "xlsx")
    context = {
        **admin_site.each_context(request),
        "title": "Settlement report",
        "form": form,
        "report": report,
        "days": _days(report) if report else [],
        "chart": _chart(report) if report and report.rows else "",
        "time_zone": timezone.get_current_timezone_name(),
    }
    return TemplateResponse(request, "admin/finance/settlement.html", context)


def _days(report: SettlementReport) -> list[dict]:
    """Per day, newest first: its channel rows, its total and its bill checks, ready to print."""
    days = []
    days_shown = (
        {r.day for r in report.rows} | {r.day for r in report.wallet_rows} | {c.day for c in report.checks if c.run}
    )
    for day in sorted(days_shown, reverse=True):
        days.append(
            {
                "day": day,
                "rows": [
                    {"channel": r.channel, "label": channel_label(r.channel), "figures": r.figures}
                    for r in report.rows_of(day)
                ],
                "total": report.by_day.get(day, Figures()),
                "wallet": report.wallet_of(day),
                "checks": [
                    {
                        "check": check,
                        "gateway": GATEWAY_LABELS.get(check.gateway, check.gateway),
                        "label": check_label(check),
                        "bill": [check.side("bill").get(f) for f in FIGURES],
                        "differences": [(f, v) for f, v in check.differences.items() if v],
                        "open_url": open_discrepancies_url(check),
                    }
                    for check in report.checks_of(day)
                ],
            }
        )
    return days


def open_discrepancies_url(check: BillCheck) -> str:
    """The discrepancy list filtered to this day and gateway, every kind, all not resolved."""
    query = urlencode(
        {"gateway": check.gateway, "bill_date": check.day.isoformat(), "status__in": "open,assigned,held"}
    )
    return f"{reverse('admin:finance_billdiscrepancy_changelist')}?{query}"


def _chart(report: SettlementReport):
    days = sorted(report.by_day)
    figures = [report.by_day[d] for d in days]
    return bar_chart(
        [d.strftime("%m-%d") for d in days],
        {
            "gross paid": [f.gross_fen for f in figures],
            "refunds": [f.refunds_fen for f in figures],
            "fees": [f.fees_fen for f in figures],
            "net settled": [f.net_fen for f in figures],
        },
        title="Per day: gross paid, refunds, gateway fees and net settled",
    )


def _download(content: bytes, content_type: str, report: SettlementReport, ext: str) -> HttpResponse:
    response = HttpResponse(content, content_type=content_type)
    name = f"settlement_{report.date_from:%Y%m%d}_{report.date_to:%Y%m%d}.{ext}"
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    return response


# --- exports ---------------------------------------------------------------------------------------


def _money_cells(figures: Figures) -> dict[str, int]:
    return {name: figures.figure(name) for name in FIGURES}


def settlement_csv(report: SettlementReport) -> bytes:
    """For people, in Excel too (UTF-8 with a BOM, so ¥ and Chinese read right): one line per day
    and gateway channel, each amount twice (``gross``: ``¥3,322.71`` for people, ``gross_fen``:
    ``332271`` for programs) and the channel by label and code; then the total of the period
    (net settled: the gateways' channels only); then wallet spending (internal, settled by no
    gateway, in no total); then each day's bill check (the bill's own totals against ours)."""
    out = io.StringIO()
    writer = csv.writer(out)
    money_head = [col for name in FIGURES for col in (name, f"{name}_fen")]
    writer.writerow(["day", "channel", "channel_code", "payments", "refunds_count", *money_head, "unbilled"])

    def line(day: str, label: str, code: str, f: Figures) -> list:
        money = _money_cells(f)
        cells = [cell for name in FIGURES for cell in (format_yuan(money[name]), money[name])]
        return [day, label, code, f.payments, f.refund_count, *cells, f.unbilled]

    for row in report.rows:
        writer.writerow(line(row.day.isoformat(), channel_label(row.channel), row.channel, row.figures))
    writer.writerow(line("Total", "gateways' channels: net settled", "", report.total))
    if report.wallet_rows:
        writer.writerow([])
        writer.writerow(["Wallet spending: internal, settled by no gateway, not in the total"])
        for row in report.wallet_rows:
            writer.writerow(line(row.day.isoformat(), channel_label(row.channel), row.channel, row.figures))
    writer.writerow([])
    writer.writerow(["Bill checks: each bill's own totals against ours"])
    bill_head = [f"bill_{name}" for name in FIGURES] + [f"ours_{name}" for name in FIGURES]
    writer.writerow(
        ["day", "gateway", "gateway_code", "state", "state_code", *bill_head, "differences", "open_discrepancies"]
    )
    for check in report.checks:
        bill, ours = check.side("bill"), check.side("ours")
        values = [format_yuan(bill.get(f)) for f in FIGURES] + [format_yuan(ours.get(f)) for f in FIGURES]
        writer.writerow(
            [
                check.day.isoformat(),
                GATEWAY_LABELS.get(check.gateway, check.gateway),
                check.gateway,
                check_label(check),
                check.state,
                *values,
                differences_text(check),
                check.open_discrepancies,
            ]
        )
    return ("\ufeff" + out.getvalue()).encode("utf-8")


def differences_text(check: BillCheck) -> str:
    """``fees -¥0.01, net +¥0.01`` (ours minus the bill's), ``""`` when they agree."""
    return ", ".join(f"{f} {format_yuan(v, signed=True)}" for f, v in check.differences.items() if v)


def settlement_xlsx(report: SettlementReport) -> bytes:
    """A workbook: "Settlement" (a row per day and gateway channel, yuan as numbers formatted ¥, fen
    beside them, a totals row of formulas over them; below it, apart, wallet spending, which no
    gateway settles) and "Bill checks" (each day's bill totals against ours)."""
    book = Workbook()
    sheet = book.active
    sheet.title = "Settlement"
    head = ["Day", "Channel", "Payments", "Refunds (count)", "Gross paid", "Refunds", "Fees", "Net settled"]
    head += ["Gross (fen)", "Refunds (fen)", "Fees (fen)", "Net (fen)", "Awaiting a bill"]
    sheet.append(head)

    def append(day, row_figures: Figures, label: str) -> None:
        f = row_figures
        money = [f.gross_fen, f.refunds_fen, f.fees_fen, f.net_fen]
        sheet.append([day, label, f.payments, f.refund_count, *map(yuan_decimal, money)])
        sheet.cell(sheet.max_row, 1).number_format = "yyyy-mm-dd"
        for i, fen in enumerate([*money, f.unbilled]):
            sheet.cell(sheet.max_row, 9 + i, fen)
        for c in range(5, 9):
            sheet.cell(sheet.max_row, c).number_format = YUAN_FORMAT

    for row in report.rows:
        append(row.day, row.figures, channel_label(row.channel))
    last = sheet.max_row
    if report.rows:
        total = ["Total", "net settled by the gateways"]
        total += [f"=SUM({get_column_letter(c)}2:{get_column_letter(c)}{last})" for c in range(3, 14)]
        sheet.append(total)
        for cell in sheet[sheet.max_row]:
            cell.font = Font(bold=True)
        for c in range(5, 9):
            sheet.cell(sheet.max_row, c).number_format = YUAN_FORMAT
    if report.wallet_rows:
        sheet.append([])
        sheet.append(["Wallet spending: internal, settled by no gateway, not in the total"])
        sheet.cell(sheet.max_row, 1).font = Font(italic=True)
        for row in report.wallet_rows:
            append(row.day, row.figures, channel_label(row.channel))
    _header(sheet, widths=[12, 28, 10, 14, 15, 15, 13, 15, 13, 13, 12, 13, 15])

    checks = book.create_sheet("Bill checks")
    checks.append(
        ["Day", "Gateway", "State"]
        + [f"Bill {n}" for n in ("gross", "refunds", "fees", "net")]
        + [f"Ours {n}" for n in ("gross", "refunds", "fees", "net")]
        + ["Differences (ours - bill)", "Open discrepancies"]
    )
    for check in report.checks:
        bill, ours = check.side("bill"), check.side("ours")
        values = [_yuan_or_blank(bill.get(f)) for f in FIGURES] + [_yuan_or_blank(ours.get(f)) for f in FIGURES]
        label = GATEWAY_LABELS.get(check.gateway, check.gateway)
        checks.append(
            [check.day, label, check_label(check), *values, differences_text(check), check.open_discrepancies]
        )
        checks.cell(checks.max_row, 1).number_format = "yyyy-mm-dd"
        for c in range(4, 12):
            checks.cell(checks.max_row, c).number_format = YUAN_FORMAT
    _header(checks, widths=[12, 12, 22, 14, 14, 12, 14, 14, 14, 12, 14, 30, 18])
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


def _yuan_or_blank(fen: int | None):
    return yuan_decimal(fen) if fen is not None else None


def _header(sheet, *, widths: list[int]) -> None:
    for cell in sheet[1]:
        cell.font = Font(bold=True)
        cell.fill = PatternFill("solid", fgColor="DDE6EE")
    for i, width in enumerate(widths, start=1):
        sheet.column_dimensions[get_column_letter(i)].width = width
    sheet.freeze_panes = "A2"


def check_label(check: BillCheck) -> str:
    return {
        "reconciled": "matches the bill",
        "discrepancy": "differs from the bill",
        "failed": "reconciliation failed",
        "not reconciled": "no bill reconciled yet",
    }[check.state]
