# ruff: noqa: RUF001, RUF002  (Chinese protocol text uses full-width punctuation)
"""Reconciliation bills in the gateways' file formats.

WeChat trade bill (`/v3/bill/tradebill`): UTF-8 CSV. A Chinese header row, one row per
successful payment (trade state SUCCESS, time = success_time) and one row per successful
refund (state REFUND, time = refund success_time) whose time falls on the bill date in
+08:00, every value prefixed with a backtick; then the summary header row and one summary
row. `hash_value` in the API answer is the SHA1 of this uncompressed CSV (the official
docs: "原始账单（gzip需要解压缩）的摘要值"); the download returns it gzip-compressed.

Alipay trade bill (`alipay.data.dataservice.bill.downloadurl.query`, bill_type=trade): a
ZIP holding `<pid>_<yyyymmdd>_业务明细.csv` and `<pid>_<yyyymmdd>_业务明细(汇总).csv`,
GBK-encoded, with Alipay's `#` banner lines, one row per payment (业务类型 交易) and per
refund (业务类型 退款, negative amounts).

Wallyt / SwiftPass daily bill (`pay.bill.merchant`): UTF-8 CSV text answered straight to the
signed XML request, the 2025 header (PROTOCOLS F.4), backticked rows (交易状态 支付成功 / 转入退款),
then the summary header row (总交易单数, 总交易额, ...) and one summary row.

A day's bill exists from the next day on (Asia/Shanghai): the gateways publish it the next morning
(WeChat after 10:00, PROTOCOLS F.4; Alipay T+1), so every bill endpoint refuses today and any later day
(`published`) the way it refuses a future day: WeChat 400 INVALID_REQUEST, Alipay isp.bill_not_exist,
Wallyt an XML reply with status 400 (its error reply format is [unconfirmed]).

Every bill carries a fee per row, the gateway's rate rounded half up to the fen (WeChat 0.60 %,
Alipay 0.60 %, Wallyt 0.30 %), given back with refunds in proportion; and its own totals. A test
can make a bill disagree with the records (`BillAdjust`, set through the control API
`POST /control/{gateway}/bills/adjust`): leave rows out, change a row's fee, or shift a total.
"""

from __future__ import annotations

import datetime as dt
import io
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .server import Request, Response
from .state import CST, Refund, Trade, now_cst, parse_time

if TYPE_CHECKING:
    from .server import Sandbox

FEE_PER_MILLE = {"wechat": 6, "alipay": 6, "wallyt": 3}  # the sandbox's rates: 0.60 %, 0.60 %, 0.30 %
TOTALS = ("gross", "refunds", "fees")


@dataclass
class BillAdjust:
    """How a test makes one gateway's bills disagree with the gateway's own records.

    ``omit``: out_trade_no / out_refund_no values left out of the bill (rows and totals);
    ``fee_fen``: a row's fee by out_trade_no / out_refund_no (the totals follow the rows);
    ``totals_delta_fen``: added to the summary's gross / refunds / fees (the rows stay right);
    ``account``: the merchant the bill names instead of ours (WeChat and Wallyt 商户号 on every row,
    Alipay's ``#账号`` banner): another merchant's bill.
    """

    omit: set[str] = field(default_factory=set)
    fee_fen: dict[str, int] = field(default_factory=dict)
    totals_delta_fen: dict[str, int] = field(default_factory=dict)
    account: str | None = None

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> BillAdjust:
        deltas = {str(k): int(v) for k, v in dict(data.get("totals_delta_fen") or {}).items()}
        unknown = set(deltas) - set(TOTALS)
        if unknown:
            raise ValueError(f"totals_delta_fen: unknown totals {sorted(unknown)}; use {list(TOTALS)}")
        return cls(
            omit={str(x) for x in data.get("omit") or []},
            fee_fen={str(k): int(v) for k, v in dict(data.get("fee_fen") or {}).items()},
            totals_delta_fen=deltas,
            account=str(data["account"]) if data.get("account") else None,
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "omit": sorted(self.omit),
            "fee_fen": self.fee_fen,
            "totals_delta_fen": self.totals_delta_fen,
            "account": self.account,
        }

    def delta(self, total: str) -> int:
        return self.totals_delta_fen.get(total, 0)


NO_ADJUST = BillAdjust()

WECHAT_HEADER = [
    "交易时间",
    "公众账号ID",
    "商户号",
    "特约商户号",
    "设备号",
    "微信订单号",
    "商户订单号",
    "用户标识",
    "交易类型",
    "交易状态",
    "付款银行",
    "货币种类",
    "应结订单金额",
    "代金券金额",
    "微信退款单号",
    "商户退款单号",
    "退款金额",
    "充值券退款金额",
    "退款类型",
    "退款状态",
    "商品名称",
    "商户数据包",
    "手续费",
    "费率",
    "订单金额",
    "申请退款金额",
    "费率备注",
]
WECHAT_SUMMARY_HEADER = [
    "总交易单数",
    "应结订单总金额",
    "退款总金额",
    "充值券退款总金额",
    "手续费总金额",
    "订单总金额",
    "申请退款总金额",
]


def yuan(fen: int, places: int = 2) -> str:
    """Fen -> the gateways' yuan text: ``1234`` -> ``"12.34"``; ``places=5`` -> ``"12.34000"`` (WeChat fees)."""
    sign = "-" if fen < 0 else ""
    fen = abs(fen)
    return f"{sign}{fen // 100}.{fen % 100:02d}{'0' * (places - 2)}"


def fee_fen(amount: int, gateway: str = "wechat") -> int:
    """The sandbox's fee on ``amount`` fen: the gateway's rate, half up to the fen (integers only)."""
    return (amount * FEE_PER_MILLE[gateway] + 500) // 1000


def _row_fee(adjust: BillAdjust, reference: str, amount: int, gateway: str) -> int:
    return adjust.fee_fen.get(reference, fee_fen(amount, gateway))


def _billed(trades: Iterable[Trade], refunds: Iterable[Refund], day: dt.date, adjust: BillAdjust):
    """The day's paid trades and successful refunds (by success time, +08:00), less those omitted."""
    by_no = {t.out_trade_no: t for t in trades}
    paid = [t for t in by_no.values() if _on_day(t.success_time, day) and t.out_trade_no not in adjust.omit]
    done = [
        r
        for r in refunds
        if r.status == "SUCCESS" and _on_day(r.success_time, day) and r.out_refund_no not in adjust.omit
    ]
    return by_no, paid, done


def published(day: dt.date) -> bool:
    """Whether the bill of ``day`` exists yet: only a day before today in Asia/Shanghai (a day's bill
    is published the next morning; the sandbox serves it from midnight on)."""
    return day < now_cst().date()


def _on_day(value: dt.datetime | None, day: dt.date) -> bool:
    return value is not None and value.astimezone(CST).date() == day


def _fmt(value: dt.datetime) -> str:
    return value.astimezone(CST).strftime("%Y-%m-%d %H:%M:%S")


def wechat_trade_bill(
    trades: Iterable[Trade],
    refunds: Iterable[Refund],
    day: dt.date,
    bill_type: str,
    mchid: str,
    adjust: BillAdjust | None = None,
) -> str | None:
    """CSV text, or None when the day has no record (WeChat answers NO_STATEMENT_EXIST)."""
    adjust = adjust or NO_ADJUST
    mchid = adjust.account or mchid
    by_no, paid, done = _billed(trades, refunds, day, adjust)
    rows: list[tuple[dt.datetime, list[str]]] = []
    n_trades = settle_total = refund_total = fee_total = order_total = apply_refund_total = 0
    if bill_type in ("ALL", "SUCCESS"):
        for t in paid:
            assert t.success_time is not None
            fee = _row_fee(adjust, t.out_trade_no, t.amount, "wechat")
            rows.append(
                (
                    t.success_time,
                    [
                        _fmt(t.success_time),
                        t.appid,
                        mchid,
                        "0",
                        "",
                        t.transaction_id,
                        t.out_trade_no,
                        t.openid,
                        t.trade_type,
                        "SUCCESS",
                        t.extra.get("bank_type", "OTHERS"),
                        "CNY",
                        yuan(t.amount),
                        "0.00",
                        "0",
                        "0",
                        "0.00",
                        "0.00",
                        "",
                        "",
                        t.description,
                        t.attach,
                        yuan(fee, 5),
                        "0.60%",
                        yuan(t.amount),
                        "0.00",
                        "",
                    ],
                )
            )
            n_trades += 1
            settle_total += t.amount
            order_total += t.amount
            fee_total += fee
    if bill_type in ("ALL", "REFUND"):
        for r in done:
            t = by_no.get(r.out_trade_no)
            assert r.success_time is not None
            fee = -_row_fee(adjust, r.out_refund_no, r.amount, "wechat")  # given back with the refund
            rows.append(
                (
                    r.success_time,
                    [
                        _fmt(r.success_time),
                        t.appid if t else "",
                        mchid,
                        "0",
                        "",
                        r.transaction_id,
                        r.out_trade_no,
                        t.openid if t else "",
                        t.trade_type if t else "",
                        "REFUND",
                        t.extra.get("bank_type", "OTHERS") if t else "OTHERS",
                        "CNY",
                        "0.00",
                        "0.00",
                        r.refund_id,
                        r.out_refund_no,
                        yuan(r.amount),
                        "0.00",
                        "ORIGINAL",
                        "SUCCESS",
                        t.description if t else "",
                        t.attach if t else "",
                        yuan(fee, 5),
                        "0.60%",
                        "0.00",
                        yuan(r.amount),
                        "",
                    ],
                )
            )
            n_trades += 1
            refund_total += r.amount
            apply_refund_total += r.amount
            fee_total += fee
    if not rows:
        return None
    rows.sort(key=lambda item: item[0])
    lines = [",".join(WECHAT_HEADER)]
    lines += [",".join("`" + v.replace(",", "，") for v in row) for _, row in rows]
    lines.append(",".join(WECHAT_SUMMARY_HEADER))
    summary = [
        str(n_trades),
        yuan(settle_total + adjust.delta("gross")),
        yuan(refund_total + adjust.delta("refunds")),
        "0.00",
        yuan(fee_total + adjust.delta("fees"), 5),
        yuan(order_total + adjust.delta("gross")),
        yuan(apply_refund_total + adjust.delta("refunds")),
    ]
    lines.append(",".join("`" + v for v in summary))
    return "\r\n".join(lines) + "\r\n"


ALIPAY_HEADER = [
    "支付宝交易号",
    "商户订单号",
    "业务类型",
    "商品名称",
    "创建时间",
    "完成时间",
    "门店编号",
    "门店名称",
    "操作员",
    "终端号",
    "对方账户",
    "订单金额（元）",
    "商家实收（元）",
    "支付宝红包（元）",
    "集分宝（元）",
    "支付宝优惠（元）",
    "商家优惠（元）",
    "券核销金额（元）",
    "券名称",
    "商家红包消费金额（元）",
    "卡消费金额（元）",
    "退款批次号/请求号",
    "服务费（元）",
    "分润（元）",
    "备注",
]


def alipay_trade_bill(
    trades: Iterable[Trade], refunds: Iterable[Refund], day: dt.date, pid: str, adjust: BillAdjust | None = None
) -> bytes | None:
    """ZIP bytes of Alipay's 业务明细 CSV pair, or None when the day has no record. 服务费 is
    written negative on a payment (taken) and positive on a refund (given back)."""
    adjust = adjust or NO_ADJUST
    pid = adjust.account or pid
    by_no, paid, done = _billed(trades, refunds, day, adjust)
    rows: list[tuple[dt.datetime, list[str]]] = []
    n_pay = n_refund = 0
    pay_sum = refund_sum = fee_sum = 0
    for t in paid:
        assert t.success_time is not None
        fee = _row_fee(adjust, t.out_trade_no, t.amount, "alipay")
        rows.append(
            (
                t.success_time,
                [
                    t.transaction_id,
                    t.out_trade_no,
                    "交易",
                    t.description,
                    _fmt(t.created_at),
                    _fmt(t.success_time),
                    "",
                    "",
                    "",
                    "",
                    t.extra.get("buyer_logon_id", ""),
                    yuan(t.amount),
                    yuan(t.amount),
                    "0.00",
                    "0.00",
                    "0.00",
                    "0.00",
                    "0.00",
                    "",
                    "0.00",
                    "0.00",
                    "",
                    yuan(-fee),
                    "0.00",
                    "",
                ],
            )
        )
        n_pay += 1
        pay_sum += t.amount
        fee_sum += fee
    for r in done:
        assert r.success_time is not None
        t = by_no.get(r.out_trade_no)
        fee = _row_fee(adjust, r.out_refund_no, r.amount, "alipay")
        rows.append(
            (
                r.success_time,
                [
                    r.transaction_id,
                    r.out_trade_no,
                    "退款",
                    t.description if t else "",
                    _fmt(r.created_at),
                    _fmt(r.success_time),
                    "",
                    "",
                    "",
                    "",
                    t.extra.get("buyer_logon_id", "") if t else "",
                    yuan(-r.amount),
                    yuan(-r.amount),
                    "0.00",
                    "0.00",
                    "0.00",
                    "0.00",
                    "0.00",
                    "",
                    "0.00",
                    "0.00",
                    r.out_refund_no,
                    yuan(fee),
                    "0.00",
                    "",
                ],
            )
        )
        n_refund += 1
        refund_sum += r.amount
        fee_sum -= fee
    if not rows:
        return None
    rows.sort(key=lambda item: item[0])
    start = f"{day.year}年{day.month:02d}月{day.day:02d}日 00:00:00"
    end_day = day + dt.timedelta(days=1)
    end = f"{end_day.year}年{end_day.month:02d}月{end_day.day:02d}日 00:00:00"
    exported = dt.datetime.now(CST).strftime("%Y年%m月%d日 %H:%M:%S")
    detail = [
        "#支付宝业务明细查询",
        f"#账号：[{pid}0156]",
        f"#起始日期：[{start}]   终止日期：[{end}]",
        "#-----------------------------------------业务明细列表----------------------------------------",
        ",".join(ALIPAY_HEADER),
    ]
    detail += [",".join(v.replace(",", "，") for v in row) for _, row in rows]
    pay_sum += adjust.delta("gross")
    refund_sum += adjust.delta("refunds")
    fee_sum += adjust.delta("fees")
    detail += [
        "#-----------------------------------------业务明细列表结束------------------------------------",
        f"#交易合计：{n_pay}笔，商家实收共{yuan(pay_sum)}元，商家优惠共0.00元",
        f"#退款合计：{n_refund}笔，商家实收退款共{yuan(-refund_sum)}元，商家优惠退款共0.00元",
        f"#导出时间：[{exported}]",
    ]
    summary = [
        "#支付宝业务汇总查询",
        f"#账号：[{pid}0156]",
        f"#起始日期：[{start}]   终止日期：[{end}]",
        "#-----------------------------------------业务汇总列表----------------------------------------",
        "门店编号,门店名称,交易订单总笔数,退款订单总笔数,订单金额（元）,商家实收（元）,服务费（元）,分润（元）,实收净额（元）",
        f"合计,,{n_pay},{n_refund},{yuan(pay_sum - refund_sum)},{yuan(pay_sum - refund_sum)},{yuan(-fee_sum)},0.00,"
        f"{yuan(pay_sum - refund_sum - fee_sum)}",
        "#-----------------------------------------业务汇总列表结束------------------------------------",
        f"#导出时间：[{exported}]",
    ]
    stamp = day.strftime("%Y%m%d")
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(f"{pid}0156_{stamp}_业务明细.csv", ("\r\n".join(detail) + "\r\n").encode("gbk"))
        zf.writestr(f"{pid}0156_{stamp}_业务明细(汇总).csv", ("\r\n".join(summary) + "\r\n").encode("gbk"))
    return buf.getvalue()


WALLYT_HEADER = [
    "交易时间",
    "公众账号ID",
    "第三方商户号",
    "商户号",
    "子商户号",
    "设备编号",
    "平台订单号",
    "第三方订单号",
    "商户订单号",
    "用户标识",
    "交易类型",
    "交易状态",
    "付款银行",
    "货币种类",
    "总金额",
    "企业红包金额",
    "平台退款单号",
    "商户退款单号",
    "退款金额",
    "企业红包退款金额",
    "退款类型",
    "退款状态",
    "商品名称",
    "商户数据包",
    "手续费",
    "费率",
    "终端类型",
    "对账标识",
    "门店编号",
    "商户名称",
    "收银员",
    "子商户ID",
    "免充值券金额",
    "实收金额",
    "结算金额",
    "扩展字段2",
    "扩展字段3",
    "扩展字段4",
]
WALLYT_SUMMARY_HEADER = ["总交易单数", "总交易额", "总退款金额", "总企业红包退款金额", "总手续费金额", "总实收金额"]


def wallyt_bill(
    trades: Iterable[Trade],
    refunds: Iterable[Refund],
    day: dt.date,
    bill_type: str,
    mch_id: str,
    adjust: BillAdjust | None = None,
) -> str:
    """The ``pay.bill.merchant`` CSV text of one day (a day without trades: header and a zero summary).

    A payment row has 交易状态 支付成功; a refund row 转入退款 with 退款状态 退款成功, its 总金额
    0.00 and its 手续费 negative (given back). 总实收金额 is what was paid less what was refunded."""
    adjust = adjust or NO_ADJUST
    mch_id = adjust.account or mch_id
    by_no, paid, done = _billed(trades, refunds, day, adjust)
    rows: list[tuple[dt.datetime, list[str]]] = []
    gross = refunded = fees = 0

    def row(when: dt.datetime, t: Trade | None, **cells: str) -> tuple[dt.datetime, list[str]]:
        common = {
            "交易时间": _fmt(when),
            "公众账号ID": t.appid if t else "",
            "商户号": mch_id,
            "第三方订单号": t.extra.get("out_transaction_id", "") if t else "",
            "用户标识": t.openid if t else "",
            "交易类型": t.trade_type if t else "",
            "付款银行": t.extra.get("bank_type", "CFT") if t else "CFT",
            "货币种类": "CNY",
            "商品名称": t.description if t else "",
            "商户数据包": t.attach if t else "",
            "费率": "0.300%",
        }
        values = {**common, **cells}
        zero = ("企业红包金额", "企业红包退款金额", "免充值券金额", "总金额", "退款金额")
        return when, [values.get(name, "0.00" if name in zero else "") for name in WALLYT_HEADER]

    if bill_type in ("ALL", "SUCCESS"):
        for t in paid:
            assert t.success_time is not None
            fee = _row_fee(adjust, t.out_trade_no, t.amount, "wallyt")
            rows.append(
                row(
                    t.success_time,
                    t,
                    平台订单号=t.transaction_id,
                    商户订单号=t.out_trade_no,
                    交易状态="支付成功",
                    总金额=yuan(t.amount),
                    手续费=yuan(fee),
                    实收金额=yuan(t.amount),
                    结算金额=yuan(t.amount - fee),
                )
            )
            gross += t.amount
            fees += fee
    if bill_type in ("ALL", "REFUND"):
        for r in done:
            assert r.success_time is not None
            fee = -_row_fee(adjust, r.out_refund_no, r.amount, "wallyt")  # given back with the refund
            rows.append(
                row(
                    r.success_time,
                    by_no.get(r.out_trade_no),
                    平台订单号=r.transaction_id,
                    商户订单号=r.out_trade_no,
                    交易状态="转入退款",
                    平台退款单号=r.refund_id,
                    商户退款单号=r.out_refund_no,
                    退款金额=yuan(r.amount),
                    退款类型="ORIGINAL",
                    退款状态="退款成功",
                    手续费=yuan(fee),
                    实收金额=yuan(-r.amount),
                    结算金额=yuan(-r.amount - fee),
                )
            )
            refunded += r.amount
            fees += fee
    rows.sort(key=lambda item: item[0])
    lines = [",".join(WALLYT_HEADER)]
    lines += [",".join("`" + v.replace(",", "，") for v in row) for _, row in rows]
    lines.append(",".join(WALLYT_SUMMARY_HEADER))
    summary = [
        str(len(rows)),
        yuan(gross + adjust.delta("gross")),
        yuan(refunded + adjust.delta("refunds")),
        "0.00",
        yuan(fees + adjust.delta("fees")),
        yuan(gross - refunded),
    ]
    lines.append(",".join("`" + v for v in summary))
    return "\ufeff" + "\r\n".join(lines) + "\r\n"


# ---------------------------------------------------------------------------- control API


def register(sb: Sandbox) -> None:
    """``GET/POST/DELETE /control/{gateway}/bills/adjust``: see, set or clear a gateway's ``BillAdjust``;
    ``POST /control/{gateway}/refunds/{no}/booked`` ``{success_time}``: re-date a successful refund;
    ``POST /control/{gateway}/transactions/{no}/booked`` ``{success_time}``: re-date a successful trade."""

    def adjust(req: Request, gateway: str) -> Response:
        store = sb.store
        if req.method == "DELETE":
            with store.lock:
                store.bill_adjust.pop(gateway, None)
            return Response.json({"gateway": gateway, "adjust": NO_ADJUST.to_json()})
        if req.method == "POST":
            try:
                data = req.json()
                if not isinstance(data, dict):
                    raise TypeError("a JSON object is expected")
                value = BillAdjust.from_json(data)
            except (ValueError, TypeError) as exc:
                return Response.json({"error": f"bad bill adjustment: {exc}"}, 400)
            with store.lock:
                store.bill_adjust[gateway] = value
        with store.lock:
            current = store.bill_adjust.get(gateway, NO_ADJUST)
        return Response.json({"gateway": gateway, "adjust": current.to_json()})

    def booked(req: Request, gateway: str, no: str, what: str) -> Response:
        """Re-date a successful trade or refund (Alipay's refunds succeed within the call, at the current
        time; a test's trades are paid now): a bill test moves them onto a day whose bill is published
        (``published``: before today)."""
        try:
            when = parse_time(str(req.json().get("success_time") or ""))
        except (ValueError, AttributeError, TypeError):
            return Response.json({"error": "success_time (ISO 8601) is required"}, 400)
        with sb.store.lock:
            if what == "transactions":
                item = sb.store.trade(gateway, no) or sb.store.trade(gateway, transaction_id=no)
            else:
                item = sb.store.refunds.get((gateway, no)) or next(
                    (r for r in sb.store.refunds.values() if r.gateway == gateway and r.out_refund_no == no), None
                )  # Alipay keys a refund by trade|out_request_no
            if item is None:
                return Response.json({"error": f"no {gateway} {what[:-1]} {no}"}, 404)
            status = item.state if isinstance(item, Trade) else item.status
            if status != "SUCCESS":
                return Response.json({"error": f"{what[:-1]} {no} is {status}, not SUCCESS"}, 409)
            item.success_time = when
            return Response.json(item.to_json())

    sb.router.add("GET,POST,DELETE", r"/control/(?P<gateway>wechat|alipay|wallyt)/bills/adjust", adjust)
    item = r"(?P<what>transactions|refunds)/(?P<no>[^/]+)"
    sb.router.add("POST", rf"/control/(?P<gateway>wechat|alipay|wallyt)/{item}/booked", booked)
