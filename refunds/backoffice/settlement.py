"""The settlement report in the back office: the page (figures, chart, bill checks) and its exports,
CSV (yuan for people beside fen for machines) and an Excel workbook (openpyxl: numbers, not text,
so a spreadsheet can add them up). Finance only (``refunds.export_finance`` or ``approve_refund``).
"""

from __future__ import annotations

import csv
import io
from datetime import date, timedelta

from django import forms
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.utils import timezone
from openpyxl import Workbook
from openpyxl.styles import Font, PatternFill
from openpyxl.utils import get_column_letter

from config.money import format_yuan, yuan_decimal
from payments.models import GATEWAY_LABELS, Channel
from refunds.backoffice.charts import bar_chart
from refunds.bills import FIGURES
from refunds.bills_workflow import is_finance
from refunds.settlement import MAX_DAYS, BillCheck, Figures, SettlementReport, settlement_report

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
    return TemplateResponse(request, "admin/refunds/settlement.html", context)


def _days(report: SettlementReport) -> list[dict]:
    """Per day, newest first: its channel rows, its total and its bill checks, ready to print."""
    days = []
    for day in sorted({r.day for r in report.rows} | {c.day for c in report.checks if c.run}, reverse=True):
        days.append(
            {
                "day": day,
                "rows": [
                    {"channel": r.channel, "label": channel_label(r.channel), "figures": r.figures}
                    for r in report.rows_of(day)
                ],
                "total": report.by_day.get(day, Figures()),
                "checks": [
                    {
                        "check": check,
                        "gateway": GATEWAY_LABELS.get(check.gateway, check.gateway),
                        "label": check_label(check),
                        "bill": [check.side("bill").get(f) for f in FIGURES],
                        "differences": [(f, v) for f, v in check.differences.items() if v],
                    }
                    for check in report.checks_of(day)
                ],
            }
        )
    return days


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

COLUMNS = ("day", "channel", "payments", "refund_count", "gross", "refunds", "fees", "net", "unbilled")


def _money_cells(figures: Figures) -> dict[str, int]:
    return {name: figures.figure(name) for name in FIGURES}


def settlement_csv(report: SettlementReport) -> bytes:
    """One line per day and channel. Each amount twice: ``gross`` as people read it (``¥3,322.71``)
    and ``gross_fen`` (an integer) for programs. UTF-8 with a BOM so that Excel reads ¥ right."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(
        ["day", "channel", "payments", "refunds_count"]
        + [col for name in FIGURES for col in (name, f"{name}_fen")]
        + ["unbilled"]
    )
    for row in report.rows:
        f = row.figures
        money = _money_cells(f)
        writer.writerow(
            [row.day.isoformat(), row.channel, f.payments, f.refund_count]
            + [cell for name in FIGURES for cell in (format_yuan(money[name]), money[name])]
            + [f.unbilled]
        )
    return ("\ufeff" + out.getvalue()).encode("utf-8")


def settlement_xlsx(report: SettlementReport) -> bytes:
    """A workbook: "Settlement" (a row per day and channel, yuan as numbers formatted ¥, fen beside
    them, a totals row of formulas) and "Bill checks" (each day's bill totals against ours)."""
    book = Workbook()
    sheet = book.active
    sheet.title = "Settlement"
    head = ["Day", "Channel", "Payments", "Refunds (count)", "Gross paid", "Refunds", "Fees", "Net settled"]
    head += ["Gross (fen)", "Refunds (fen)", "Fees (fen)", "Net (fen)", "Awaiting a bill"]
    sheet.append(head)
    for row in report.rows:
        f = row.figures
        money = [f.gross_fen, f.refunds_fen, f.fees_fen, f.net_fen]
        sheet.append([row.day, channel_label(row.channel), f.payments, f.refund_count, *map(yuan_decimal, money)])
        sheet.cell(sheet.max_row, 1).number_format = "yyyy-mm-dd"
        for i, fen in enumerate([*money, f.unbilled]):
            sheet.cell(sheet.max_row, 9 + i, fen)
    last = sheet.max_row
    if report.rows:
        total = ["Total", "", *(f"=SUM({get_column_letter(c)}2:{get_column_letter(c)}{last})" for c in range(3, 14))]
        sheet.append(total)
        for cell in sheet[sheet.max_row]:
            cell.font = Font(bold=True)
    for r in range(2, sheet.max_row + 1):
        for c in range(5, 9):
            sheet.cell(r, c).number_format = YUAN_FORMAT
    _header(sheet, widths=[12, 24, 10, 14, 15, 15, 13, 15, 13, 13, 12, 13, 15])

    checks = book.create_sheet("Bill checks")
    checks.append(
        ["Day", "Gateway", "State"]
        + [f"Bill {n}" for n in ("gross", "refunds", "fees", "net")]
        + [f"Ours {n}" for n in ("gross", "refunds", "fees", "net")]
        + ["Differences"]
    )
    for check in report.checks:
        bill, ours = check.side("bill"), check.side("ours")
        values = [_yuan_or_blank(bill.get(f)) for f in FIGURES] + [_yuan_or_blank(ours.get(f)) for f in FIGURES]
        diff = ", ".join(f"{f} {format_yuan(v, signed=True)}" for f, v in check.differences.items() if v)
        checks.append([check.day, check.gateway, check.state, *values, diff])
        checks.cell(checks.max_row, 1).number_format = "yyyy-mm-dd"
        for c in range(4, 12):
            checks.cell(checks.max_row, c).number_format = YUAN_FORMAT
    _header(checks, widths=[12, 10, 15, 14, 14, 12, 14, 14, 14, 12, 14, 40])
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
