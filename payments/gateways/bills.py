# ruff: noqa: RUF001, RUF002  (Chinese protocol text uses full-width punctuation)
"""Gateway trade bills as plain ``BillEntry`` rows (payments and refunds), in our own vocabulary,
with each row's gateway fee and the bill's own totals (``Bill.totals``).

Three formats (see ``sandbox/bills.py`` for what the sandbox produces, which follows the gateways;
the field facts are in PROTOCOLS F.4):

* WeChat Pay ``/v3/bill/tradebill`` (``bill_type=ALL``): UTF-8 CSV, a Chinese header row, one row
  per payment (交易状态 ``SUCCESS``/``REVOKED``) or refund (交易状态 ``REFUND``), every value
  prefixed with a backtick, then a summary header row (总交易单数, ...) and one summary row.
* Alipay ``alipay.data.dataservice.bill.downloadurl.query`` (``bill_type=trade``): a ZIP holding
  the ``..._业务明细.csv`` detail file (and a ``(汇总)`` summary file we ignore), GBK-encoded,
  ``#`` banner lines around one header row and one row per payment (业务类型 交易) or refund
  (退款, negative amounts); its totals are the ``#交易合计`` / ``#退款合计`` banner lines and the
  ``(汇总)`` summary file's ``合计`` row (服务费, 实收净额).
* Wallyt / SwiftPass ``pay.bill.merchant`` (``bill_type=ALL``): UTF-8 CSV text (maybe with a BOM),
  the header, backticked rows (交易状态 in Chinese or English), then a summary header
  (总交易单数, 总交易额, 总退款金额, ...) and one summary row.

Fees (WeChat 手续费, Alipay 服务费（元）, Wallyt 手续费) are stored as what the gateway keeps:
positive on a payment (charged), negative on a refund (given back with it), whatever sign the
file writes, because the files' sign conventions are [unconfirmed] (PROTOCOLS F.4). WeChat writes
fees with five decimals; a fee is settled in whole fen, so it is rounded half up to the fen.

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
import re
import zipfile
import zlib
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
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
ALIPAY_SUMMARY_SUFFIX = "业务明细(汇总).csv"
# Wallyt 交易状态 / 退款状态: SwiftPass bills write them in Chinese; the English words are accepted too
WALLYT_TRADE_STATES = {
    "支付成功": "succeeded",
    "SUCCESS": "succeeded",
    "已关闭": "closed",
    "CLOSED": "closed",
    "已冲正": "closed",
    "REVERSE": "closed",
    "已撤销": "closed",
    "REVOKED": "closed",
}
WALLYT_REFUND_ROW_STATES = {"转入退款", "REFUND"}
WALLYT_REFUND_STATES = {
    "退款成功": "succeeded",
    "SUCCESS": "succeeded",
    "退款处理中": "processing",
    "PROCESSING": "processing",
    "退款失败": "failed",
    "FAIL": "failed",
    "转入代发": "abnormal",
    "CHANGE": "abnormal",
}


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
    fee_fen: int = 0  # what the gateway keeps: > 0 on a payment, < 0 (given back) on a refund
    # whose line the bill says it is (compared by the gateway's CHECKS, message "bill"); None: not in this bill
    app_id: str | None = None
    merchant_id: str | None = None
    seller_id: str | None = None
    sub_app_id: str | None = None
    raw: dict[str, str] = field(default_factory=dict, compare=False)

    @property
    def identity(self) -> dict[str, str]:
        names = ("app_id", "merchant_id", "seller_id", "sub_app_id")
        return {name: getattr(self, name) for name in names if getattr(self, name)}

    @property
    def reference(self) -> str:
        """Our key: ``out_trade_no`` (= payment_no) for payments, ``out_refund_no`` (= refund_no) for refunds."""
        return self.out_refund_no if self.kind == "refund" and self.out_refund_no else self.out_trade_no


@dataclass(frozen=True)
class BillTotals:
    """A bill's own totals, in fen (``None``: the bill does not state that figure).

    ``gross_fen``: payments; ``refunds_fen``: refunds (positive); ``fees_fen``: fees kept by the
    gateway, net of the fees it gave back with refunds; ``net_fen``: what it settles to us, where
    the bill states it (Alipay 实收净额), else ``None`` (then net = gross - refunds - fees).
    """

    gross_fen: int | None
    refunds_fen: int | None
    fees_fen: int | None
    net_fen: int | None = None

    @property
    def settled_fen(self) -> int | None:
        """The bill's net: stated, or gross - refunds - fees when all three are stated."""
        if self.net_fen is not None:
            return self.net_fen
        if None in (self.gross_fen, self.refunds_fen, self.fees_fen):
            return None
        return self.gross_fen - self.refunds_fen - self.fees_fen  # type: ignore[operator]

    def as_dict(self) -> dict[str, int | None]:
        return {
            "gross_fen": self.gross_fen,
            "refunds_fen": self.refunds_fen,
            "fees_fen": self.fees_fen,
            "net_fen": self.settled_fen,
        }


class Bill(list[BillEntry]):
    """The entries of one day's bill (a ``list``, so code that wants only the rows can ignore the
    rest) plus the bill's own totals (``None`` when the file states none, e.g. a day without trades)."""

    def __init__(self, entries=(), *, totals: BillTotals | None = None) -> None:
        super().__init__(entries)
        self.totals = totals


def bill_totals(entries: list[BillEntry]) -> BillTotals | None:
    """The totals a bill states (``Bill.totals``); ``None`` for a plain list or a bill that states none."""
    return getattr(entries, "totals", None)


class BillSource(Protocol):
    """A gateway adapter that publishes daily trade bills (WeChat Pay, Alipay, Wallyt)."""

    name: str

    def bill(self, bill_date: date) -> list[BillEntry]:
        """The day's bill (Asia/Shanghai day), a ``Bill`` with its totals; ``[]`` for a day without
        trades. Raises ``GatewayUnavailable``."""


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


def _decimal_yuan(value: str) -> Decimal:
    """A yuan cell as written (sign, up to five decimals, thousands commas) -> ``Decimal``."""
    text = value.strip().replace(",", "")
    try:
        amount = Decimal(text)
    except InvalidOperation as exc:
        raise ValueError(f"not an amount: {value!r}") from exc
    if not amount.is_finite() or amount.as_tuple().exponent < -5:  # type: ignore[operator]
        raise ValueError(f"not an amount: {value!r}")
    return amount


def _fen_half_up(amount: Decimal) -> int:
    return int((amount * 100).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def _fee(value: str, kind: EntryKind) -> int:
    """A fee cell (yuan, up to 5 decimals, any sign) -> fen kept by the gateway: + payment, - refund."""
    if not value.strip():
        return 0
    fen = _fen_half_up(abs(_decimal_yuan(value)))
    return fen if kind == "payment" else -fen


def _signed_fen(value: str) -> int:
    """A total cell in yuan that may carry a sign or more than two decimals -> fen (sign kept)."""
    return _fen_half_up(_decimal_yuan(value))


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


def parse_wechat_trade_bill(text: str) -> Bill:
    """Rows of a WeChat ``ALL`` trade bill (CSV text, backticks included) -> a ``Bill`` (entries, totals)."""
    header, rows, summary = _backticked(text)
    if not header:
        return Bill()
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
    fee = _column(header, "手续费")
    entries = [
        _wechat_entry(values, col, order_amount, applied_refund, fee, dict(zip(header, values, strict=False)))
        for values in rows
    ]
    totals = None
    if summary:
        totals = BillTotals(
            gross_fen=_signed_fen(summary.get("订单总金额") or summary["应结订单总金额"]),
            refunds_fen=abs(_signed_fen(summary.get("申请退款总金额") or summary["退款总金额"])),
            fees_fen=_signed_fen(summary["手续费总金额"]) if "手续费总金额" in summary else None,
        )
    return Bill(entries, totals=totals)


def _backticked(text: str) -> tuple[list[str], list[list[str]], dict[str, str]]:
    """A WeChat-style bill (WeChat, SwiftPass): header, backticked rows, then a summary header
    (总交易单数, ...) and its one row -> (header, rows without backticks, {summary name: value})."""
    rows = [row for row in csv.reader(io.StringIO(text.lstrip("\ufeff"))) if any(cell.strip() for cell in row)]
    if not rows:
        return [], [], {}
    header = [cell.strip() for cell in rows[0]]
    body: list[list[str]] = []
    for i, row in enumerate(rows[1:], start=1):
        values = [_cell(cell) for cell in row]
        if values[0] == WECHAT_SUMMARY_FIRST:
            return header, body, _summary(values, rows[i + 1] if i + 1 < len(rows) else [])
        if len(values) < len(header):
            raise ValueError(f"bill row has {len(values)} columns, the header {len(header)}")
        body.append(values)
    return header, body, {}


def _cell(cell: str) -> str:
    return cell.strip().removeprefix("`").strip()


def _summary(names: list[str], values: list[str]) -> dict[str, str]:
    """The summary header and its one value row -> {name: value}. Raises ``ValueError`` if they differ."""
    names = [n.strip() for n in names]
    cells = [_cell(v) for v in values]
    if len(cells) < len(names):
        raise ValueError("the bill's summary row is missing or short")
    return dict(zip(names, cells, strict=False))


def _wechat_entry(
    values: list[str],
    col: dict[str, int],
    order_amount: int | None,
    applied_refund: int | None,
    fee: int | None,
    raw: dict[str, str],
) -> BillEntry:
    trade_state = values[col["trade_state"]]
    common = {
        "out_trade_no": values[col["out_trade_no"]],
        "occurred_at": _time(values[col["time"]]),
        "gateway_trade_no": values[col["transaction_id"]],
        "app_id": raw.get("公众账号ID") or None,
        "merchant_id": raw.get("商户号") or None,
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
            fee_fen=_fee(values[fee], "refund") if fee is not None else 0,
            **common,
        )
    amount_col = order_amount if order_amount is not None else col["settle_amount"]
    return BillEntry(
        kind="payment",
        out_refund_no=None,
        amount_fen=_fen(values[amount_col]),
        status=WECHAT_TRADE_STATES.get(trade_state, trade_state.lower() or "unknown"),
        fee_fen=_fee(values[fee], "payment") if fee is not None else 0,
        **common,
    )


# --------------------------------------------------------------------------- Alipay


def parse_alipay_bill_zip(data: bytes) -> Bill:
    """The ZIP Alipay's bill download URL serves -> its 业务明细 (detail) CSV as a ``Bill``, the fee
    and net totals taken from the ``(汇总)`` summary file when the archive has one."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            detail = _zip_member(archive, ALIPAY_DETAIL_SUFFIX)
            if detail is None:
                raise ValueError("bill archive has no 业务明细 file")
            summary = _zip_member(archive, ALIPAY_SUMMARY_SUFFIX)
    except (zipfile.BadZipFile, zlib.error, EOFError) as exc:
        raise ValueError(f"bill download is not a valid ZIP: {exc}") from exc
    bill = parse_alipay_trade_bill(detail.decode("gb18030"))
    if summary is not None and bill.totals is not None:
        fees, net = _alipay_summary(summary.decode("gb18030"))
        bill.totals = BillTotals(bill.totals.gross_fen, bill.totals.refunds_fen, fees, net)
    return bill


def _zip_member(archive: zipfile.ZipFile, suffix: str) -> bytes | None:
    names = [n for n in archive.namelist() if n.endswith(suffix)]
    if not names:
        return None
    info = archive.getinfo(names[0])
    if info.file_size > MAX_BILL_BYTES:
        raise ValueError("bill is too large")
    return archive.read(info)


# "#账号:[20881234567890120156]" (full-width colon): the PID (2088 + 12 digits) + a 4-digit suffix (dax)
_ALIPAY_ACCOUNT_RE = re.compile(r"^#账号[:：]\s*\[(2088\d{12})\d*\]")
_ALIPAY_TOTAL_RE = re.compile(r"^#(交易|退款)合计[:：]\s*(\d+)\s*笔[,，]\s*商家实收(?:退款)?共\s*(-?[\d.,]+)\s*元")


def parse_alipay_trade_bill(text: str) -> Bill:
    """The 业务明细 CSV text (``#`` banner lines, one header row, data rows, ``#交易合计`` /
    ``#退款合计`` lines) -> a ``Bill``; its totals carry gross and refunds (fees: see the summary)."""
    lines = [line for line in text.lstrip("\ufeff").splitlines() if line.strip()]
    body: list[str] = []
    started = ended = False
    stated: dict[str, int] = {}
    seller_id = None
    for line in lines:
        if line.startswith("#"):
            ended = started  # a banner after the rows closes them: the totals follow
            if match := _ALIPAY_TOTAL_RE.match(line.strip()):
                stated[match.group(1)] = abs(_signed_fen(match.group(3)))
            elif match := _ALIPAY_ACCOUNT_RE.match(line.strip()):
                seller_id = match.group(1)
            continue
        if not ended:
            started = True
            body.append(line)
    totals = BillTotals(stated.get(ALIPAY_PAYMENT), stated.get(ALIPAY_REFUND), None) if stated else None
    if not body:
        return Bill(totals=totals)
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
    fee = _column(header, "服务费")
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
                fee_fen=_fee(values[fee], "refund" if is_refund else "payment") if fee is not None else 0,
                seller_id=seller_id,
                raw=dict(zip(header, values, strict=False)),
            )
        )
    return Bill(entries, totals=totals)


def _alipay_summary(text: str) -> tuple[int | None, int | None]:
    """The ``(汇总)`` file's ``合计`` row -> (fees kept, net settled), fen. 服务费 is written as a
    negative number (money taken), so it is negated; 实收净额 is taken as written."""
    rows = [row for row in csv.reader(io.StringIO(text.lstrip("\ufeff"))) if row and not row[0].startswith("#")]
    if not rows:
        return None, None
    header = [cell.strip() for cell in rows[0]]
    total = next((row for row in rows[1:] if row and row[0].strip() == "合计"), None)
    if total is None:
        raise ValueError("the summary file has no 合计 row")
    values = dict(zip(header, (cell.strip() for cell in total), strict=False))
    fee_col = next((v for k, v in values.items() if k.startswith("服务费")), None)
    net_col = next((v for k, v in values.items() if k.startswith("实收净额")), None)
    fees = -_signed_fen(fee_col) if fee_col else None
    net = _signed_fen(net_col) if net_col else None
    return fees, net


# --------------------------------------------------------------------------- Wallyt (SwiftPass)


def parse_wallyt_bill(text: str) -> Bill:
    """A SwiftPass-family ``pay.bill.merchant`` ``ALL`` bill (CSV text, backticked values) -> a ``Bill``.

    Columns by header name (PROTOCOLS F.4, the 2025 header; older headers differ): 交易时间,
    平台订单号, 商户订单号, 交易状态, 总金额, 商户退款单号, 退款金额, 退款状态, 手续费. A refund
    row has 交易状态 转入退款 (or REFUND). The summary: 总交易单数, 总交易额, 总退款金额, ...,
    总手续费金额.
    """
    header, rows, summary = _backticked(text)
    if not header:
        return Bill()
    col = {
        "time": _need(header, "交易时间"),
        "trade_no": _need(header, "平台订单号"),
        "out_trade_no": _need(header, "商户订单号"),
        "trade_state": _need(header, "交易状态"),
        "amount": _need(header, "总金额"),
        "out_refund_no": _need(header, "商户退款单号"),
        "refund_amount": _need(header, "退款金额"),
        "refund_state": _need(header, "退款状态"),
    }
    fee = _column(header, "手续费")
    entries: list[BillEntry] = []
    for values in rows:
        trade_state = values[col["trade_state"]]
        is_refund = trade_state in WALLYT_REFUND_ROW_STATES
        kind: EntryKind = "refund" if is_refund else "payment"
        if is_refund:
            state = values[col["refund_state"]]
            status = WALLYT_REFUND_STATES.get(state, state.lower() or "unknown")
        else:
            status = WALLYT_TRADE_STATES.get(trade_state, trade_state.lower() or "unknown")
        entries.append(
            BillEntry(
                kind=kind,
                out_trade_no=values[col["out_trade_no"]],
                out_refund_no=values[col["out_refund_no"]] or None if is_refund else None,
                amount_fen=_fen(values[col["refund_amount"] if is_refund else col["amount"]]),
                status=status,
                occurred_at=_time(values[col["time"]]),
                gateway_trade_no=values[col["trade_no"]],
                fee_fen=_fee(values[fee], kind) if fee is not None else 0,
                merchant_id=_optional(header, values, "商户号"),  # 公众账号ID: whose appid is unconfirmed
                raw=dict(zip(header, values, strict=False)),
            )
        )
    totals = None
    if summary:
        totals = BillTotals(
            gross_fen=_signed_fen(summary["总交易额"]),
            refunds_fen=abs(_signed_fen(summary["总退款金额"])),
            fees_fen=_signed_fen(summary["总手续费金额"]) if "总手续费金额" in summary else None,
        )
    return Bill(entries, totals=totals)


def read_wechat_bill(body: bytes, *, hash_value: str) -> Bill:
    """A downloaded WeChat trade bill: gunzip, check the SHA1 of the uncompressed CSV, parse.
    Raises ``ValueError`` (unreadable, hash mismatch, unparsable)."""
    csv_bytes = gunzip(body)
    if not sha1_matches(csv_bytes, hash_value):
        raise ValueError("the bill does not match its SHA1 hash_value")
    try:
        return parse_wechat_trade_bill(csv_bytes.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise ValueError(f"the bill is not UTF-8: {exc}") from exc


def _optional(header: list[str], values: list[str], name: str) -> str | None:
    index = _column(header, name)
    return (values[index] or None) if index is not None else None
