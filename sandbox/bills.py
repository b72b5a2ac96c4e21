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
"""

from __future__ import annotations

import datetime as dt
import io
import zipfile
from collections.abc import Iterable

from .state import CST, Refund, Trade

FEE_RATE = 0.006

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


def yuan(fen: int) -> str:
    sign = "-" if fen < 0 else ""
    fen = abs(fen)
    return f"{sign}{fen // 100}.{fen % 100:02d}"


def fee_fen(amount: int) -> int:
    return int(amount * FEE_RATE + 0.5)


def _on_day(value: dt.datetime | None, day: dt.date) -> bool:
    return value is not None and value.astimezone(CST).date() == day


def _fmt(value: dt.datetime) -> str:
    return value.astimezone(CST).strftime("%Y-%m-%d %H:%M:%S")


def wechat_trade_bill(
    trades: Iterable[Trade], refunds: Iterable[Refund], day: dt.date, bill_type: str, mchid: str
) -> str | None:
    """CSV text, or None when the day has no record (WeChat answers NO_STATEMENT_EXIST)."""
    by_no = {t.out_trade_no: t for t in trades}
    rows: list[tuple[dt.datetime, list[str]]] = []
    n_trades = settle_total = refund_total = fee_total = order_total = apply_refund_total = 0
    if bill_type in ("ALL", "SUCCESS"):
        for t in by_no.values():
            if t.success_time is None or not _on_day(t.success_time, day):
                continue
            fee = fee_fen(t.amount)
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
                        yuan(fee),
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
        for r in refunds:
            if r.status != "SUCCESS" or not _on_day(r.success_time, day):
                continue
            t = by_no.get(r.out_trade_no)
            assert r.success_time is not None
            fee = -fee_fen(r.amount)
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
                        yuan(fee),
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
        yuan(settle_total),
        yuan(refund_total),
        "0.00",
        yuan(fee_total),
        yuan(order_total),
        yuan(apply_refund_total),
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


def alipay_trade_bill(trades: Iterable[Trade], refunds: Iterable[Refund], day: dt.date, pid: str) -> bytes | None:
    """ZIP bytes of Alipay's 业务明细 CSV pair, or None when the day has no record."""
    by_no = {t.out_trade_no: t for t in trades}
    rows: list[tuple[dt.datetime, list[str]]] = []
    n_pay = n_refund = 0
    pay_sum = refund_sum = fee_sum = 0
    for t in by_no.values():
        if t.success_time is None or not _on_day(t.success_time, day):
            continue
        fee = fee_fen(t.amount)
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
    for r in refunds:
        if r.status != "SUCCESS" or not _on_day(r.success_time, day):
            continue
        assert r.success_time is not None
        t = by_no.get(r.out_trade_no)
        fee = fee_fen(r.amount)
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
