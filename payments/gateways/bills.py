"""Gateway trade bills as plain ``BillEntry`` rows (payments and refunds), in our own vocabulary.

Two formats (see ``sandbox/bills.py`` for what the sandbox produces, which follows the gateways):

* WeChat Pay ``/v3/bill/tradebill`` (``bill_type=ALL``): UTF-8 CSV, a Chinese header row, one row
  per payment (交易状态 ``SUCCESS``/``REVOKED``) or refund (交易状态 ``REFUND``), every value
  prefixed with a backtick, then a summary header row (总交易单数, ...) and one summary row.
* Alipay ``alipay.data.dataservice.bill.downloadurl.query`` (``bill_type=trade``): a ZIP holding
  the ``..._业务明细.csv`` detail file (and a ``(汇总)`` summary file we ignore), GBK-encoded,
  ``#`` banner lines around one header row and one row per payment (业务类型 交易) or refund
  (退款, negative amounts).

Columns are found by header name (WeChat adds columns over time), amounts go through the one
yuan -> fen helper. Parsers raise ``ValueError`` on anything they cannot read; the adapters turn
that into ``GatewayUnavailable``. Nothing here touches the ORM or the network.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import hmac
import io
import zipfile
import zlib
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from typing import Literal, Protocol

from payments.gateways.money import yuan_to_fen

CST = timezone(timedelta(hours=8))
TIME_FORMAT = "%Y-%m-%d %H:%M:%S"
MAX_BILL_BYTES = 200 * 1024 * 1024  # a decompressed bill larger than this is refused, not parsed

EntryKind = Literal["payment", "refund"]

WECHAT_TRADE_STATES = {"SUCCESS": "succeeded", "REVOKED": "closed"}  # 交易状态 of payment rows
WECHAT_REFUND_STATES = {  # 退款状态 of refund rows
    "SUCCESS": "succeeded",
    "PROCESSING": "processing",
    "CHANGE": "abnormal",
    "ABNORMAL": "abnormal",
    "FAIL": "failed",
    "CLOSED": "failed",
    "REFUNDCLOSE": "failed",
}
WECHAT_SUMMARY_FIRST = "总交易单数"
ALIPAY_PAYMENT, ALIPAY_REFUND = "交易", "退款"
ALIPAY_DETAIL_SUFFIX = "业务明细.csv"


@dataclass(frozen=True)
class BillEntry:
    """One payment or refund as a gateway's bill reports it."""

    kind: EntryKind
    out_trade_no: str
    out_refund_no: str | None
    amount_fen: int  # always positive: a refund of 12.00 is 1200
    status: str  # our vocabulary: succeeded / closed (payments), succeeded / processing / failed / abnormal
    occurred_at: datetime  # when the gateway booked it (aware, +08:00)
    gateway_trade_no: str
    raw: dict[str, str] = field(default_factory=dict, compare=False)

    @property
    def reference(self) -> str:
        """Our key: ``out_trade_no`` (= payment_no) for payments, ``out_refund_no`` (= refund_no) for refunds."""
        return self.out_refund_no if self.kind == "refund" and self.out_refund_no else self.out_trade_no


class BillSource(Protocol):
    """A gateway adapter that publishes daily trade bills (WeChat Pay, Alipay)."""

    name: str

    def bill(self, bill_date: date) -> list[BillEntry]:
        """The day's bill (Asia/Shanghai day); ``[]`` for a day without trades. Raises ``GatewayUnavailable``."""


# --------------------------------------------------------------------------- shared helpers


def sha1_matches(data: bytes, expected_hex: str) -> bool:
    """WeChat's ``hash_value``: SHA1 (hex) of the *uncompressed* bill."""
    actual = hashlib.sha1(data).hexdigest()  # noqa: S324 - WeChat's protocol says SHA1
    return hmac.compare_digest(actual, (expected_hex or "").strip().lower())


def gunzip(data: bytes) -> bytes:
    """Decompress a gzip download (refusing bombs); plain CSV (tar_type unset) passes through."""
    if not data.startswith(b"\x1f\x8b"):
        return data
    try:
        with gzip.GzipFile(fileobj=io.BytesIO(data)) as handle:
            out = handle.read(MAX_BILL_BYTES + 1)
    except (OSError, EOFError, zlib.error) as exc:
        raise ValueError(f"bill download is not valid gzip: {exc}") from exc
    if len(out) > MAX_BILL_BYTES:
        raise ValueError("bill is too large")
    return out


def _fen(value: str) -> int:
    text = value.strip().replace(",", "")
    return yuan_to_fen(text[1:] if text.startswith("-") else text)


def _time(value: str) -> datetime:
    return datetime.strptime(value.strip(), TIME_FORMAT).replace(tzinfo=CST)


def _column(header: list[str], *prefixes: str) -> int | None:
    """Index of the first column whose name starts with one of ``prefixes`` (full-width brackets vary)."""
    for prefix in prefixes:
        for i, name in enumerate(header):
            if name.strip().startswith(prefix):
                return i
    return None


def _need(header: list[str], *prefixes: str) -> int:
    index = _column(header, *prefixes)
    if index is None:
        raise ValueError(f"bill header lacks column {prefixes[0]!r}")
    return index


# --------------------------------------------------------------------------- WeChat


def parse_wechat_trade_bill(text: str) -> list[BillEntry]:
    """Rows of a WeChat ``ALL`` trade bill (CSV text, backticks included) -> entries."""
    rows = [row for row in csv.reader(io.StringIO(text.lstrip("\ufeff"))) if any(cell.strip() for cell in row)]
    if not rows:
        return []
    header = [cell.strip() for cell in rows[0]]
    col = {
        "time": _need(header, "交易时间"),
        "transaction_id": _need(header, "微信订单号"),
        "out_trade_no": _need(header, "商户订单号"),
        "trade_state": _need(header, "交易状态"),
        "settle_amount": _need(header, "应结订单金额"),
        "out_refund_no": _need(header, "商户退款单号"),
        "refund_amount": _need(header, "退款金额"),
        "refund_state": _need(header, "退款状态"),
    }
    order_amount = _column(header, "订单金额")
    applied_refund = _column(header, "申请退款金额")
    entries: list[BillEntry] = []
    for row in rows[1:]:
        values = [cell.strip().removeprefix("`").strip() for cell in row]
        if values[0] == WECHAT_SUMMARY_FIRST:
            break  # the summary header; the summary row follows
        if len(values) < len(header):
            raise ValueError(f"bill row has {len(values)} columns, the header {len(header)}")
        raw = dict(zip(header, values, strict=False))
        entries.append(_wechat_entry(values, col, order_amount, applied_refund, raw))
    return entries


def _wechat_entry(
    values: list[str], col: dict[str, int], order_amount: int | None, applied_refund: int | None, raw: dict[str, str]
) -> BillEntry:
    trade_state = values[col["trade_state"]]
    common = {
        "out_trade_no": values[col["out_trade_no"]],
        "occurred_at": _time(values[col["time"]]),
        "gateway_trade_no": values[col["transaction_id"]],
        "raw": raw,
    }
    if trade_state == "REFUND":
        amount_col = applied_refund if applied_refund is not None else col["refund_amount"]
        refund_state = values[col["refund_state"]]
        return BillEntry(
            kind="refund",
            out_refund_no=values[col["out_refund_no"]],
            amount_fen=_fen(values[amount_col]),
            status=WECHAT_REFUND_STATES.get(refund_state, refund_state.lower() or "unknown"),
            **common,
        )
    amount_col = order_amount if order_amount is not None else col["settle_amount"]
    return BillEntry(
        kind="payment",
        out_refund_no=None,
        amount_fen=_fen(values[amount_col]),
        status=WECHAT_TRADE_STATES.get(trade_state, trade_state.lower() or "unknown"),
        **common,
    )


# --------------------------------------------------------------------------- Alipay


def parse_alipay_bill_zip(data: bytes) -> list[BillEntry]:
    """The ZIP Alipay's bill download URL serves -> entries of its 业务明细 (detail) CSV."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            names = [n for n in archive.namelist() if n.endswith(ALIPAY_DETAIL_SUFFIX)]
            if not names:
                raise ValueError("bill archive has no 业务明细 file")
            info = archive.getinfo(names[0])
            if info.file_size > MAX_BILL_BYTES:
                raise ValueError("bill is too large")
            content = archive.read(info)
    except (zipfile.BadZipFile, zlib.error, EOFError) as exc:
        raise ValueError(f"bill download is not a valid ZIP: {exc}") from exc
    return parse_alipay_trade_bill(content.decode("gb18030"))


def parse_alipay_trade_bill(text: str) -> list[BillEntry]:
    """The 业务明细 CSV text (``#`` banner lines, one header row, data rows) -> entries."""
    lines = [line for line in text.lstrip("\ufeff").splitlines() if line.strip()]
    body: list[str] = []
    started = False
    for line in lines:
        if line.startswith("#"):
            if started:
                break  # the closing banner: totals follow
            continue
        started = True
        body.append(line)
    if not body:
        return []
    rows = list(csv.reader(io.StringIO("\n".join(body))))
    header = [cell.strip() for cell in rows[0]]
    col = {
        "trade_no": _need(header, "支付宝交易号"),
        "out_trade_no": _need(header, "商户订单号"),
        "type": _need(header, "业务类型"),
        "finished": _need(header, "完成时间"),
        "amount": _need(header, "订单金额"),
        "refund_no": _need(header, "退款批次号"),
    }
    entries: list[BillEntry] = []
    for row in rows[1:]:
        values = [cell.strip() for cell in row]
        if len(values) < len(header):
            raise ValueError(f"bill row has {len(values)} columns, the header {len(header)}")
        kind = values[col["type"]]
        if kind not in (ALIPAY_PAYMENT, ALIPAY_REFUND):
            continue  # other business types (e.g. 收费) are not trades of ours
        is_refund = kind == ALIPAY_REFUND
        entries.append(
            BillEntry(
                kind="refund" if is_refund else "payment",
                out_trade_no=values[col["out_trade_no"]],
                out_refund_no=(values[col["refund_no"]] or None) if is_refund else None,
                amount_fen=_fen(values[col["amount"]]),
                status="succeeded",  # Alipay's bill lists completed trades and refunds only
                occurred_at=_time(values[col["finished"]]),
                gateway_trade_no=values[col["trade_no"]],
                raw=dict(zip(header, values, strict=False)),
            )
        )
    return entries


def read_wechat_bill(body: bytes, *, hash_value: str) -> list[BillEntry]:
    """A downloaded WeChat trade bill: gunzip, check the SHA1 of the uncompressed CSV, parse.
    Raises ``ValueError`` (unreadable, hash mismatch, unparsable)."""
    csv_bytes = gunzip(body)
    if not sha1_matches(csv_bytes, hash_value):
        raise ValueError("the bill does not match its SHA1 hash_value")
    try:
        return parse_wechat_trade_bill(csv_bytes.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise ValueError(f"the bill is not UTF-8: {exc}") from exc
