"""Cashier pages where a person (or a test) presses Pay / Fail, for all three gateways."""

from __future__ import annotations

import html
import re
import string
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import qrcode
import qrcode.image.svg

from .bills import yuan
from .server import Request, Response
from .state import Trade, rfc3339

if TYPE_CHECKING:
    from .server import Sandbox

TEMPLATE_DIR = Path(__file__).resolve().parent.parent / "templates" / "sandbox"
BRANDS = {
    "wechat": ("微信支付 WeChat Pay", "#07c160"),
    "alipay": ("支付宝 Alipay", "#1677ff"),
    "wallyt": ("Wallyt 威富通", "#ff7a00"),
}
_cache: dict[str, string.Template] = {}


def template(name: str) -> string.Template:
    if name not in _cache:
        _cache[name] = string.Template((TEMPLATE_DIR / name).read_text(encoding="utf-8"))
    return _cache[name]


def esc(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def page(gateway: str, title: str, content: str, status: int = 200) -> Response:
    brand, color = BRANDS.get(gateway, ("Payment sandbox", "#555"))
    return Response.html(
        template("base.html").substitute(title=esc(title), brand=esc(brand), color=color, content=content), status
    )


def qr_svg(data: str) -> str:
    img = qrcode.make(data, image_factory=qrcode.image.svg.SvgPathImage, box_size=10, border=2)
    svg = img.to_string(encoding="unicode")
    return re.sub(r"^<\?xml[^>]*\?>\s*", "", svg)


def _rows(pairs: list[tuple[str, Any]]) -> str:
    return "".join(f"<tr><td>{esc(k)}</td><td>{esc(v)}</td></tr>" for k, v in pairs if v not in (None, ""))


def render_cashier(
    gateway: str, trade: Trade, *, redirect: str = "", qr: str | None = None, state_label: str | None = None
) -> Response:
    payable = trade.state in ("NOTPAY", "PAYERROR")
    no = quote(trade.out_trade_no, safe="")
    buttons = ""
    if payable:
        buttons = template("buttons.html").substitute(
            pay_action=f"/cashier/{gateway}/{no}/pay",
            fail_action=f"/cashier/{gateway}/{no}/fail",
            redirect=esc(redirect),
            pay_label="确认支付 Pay",
            fail_label="支付失败 Fail",
        )
    rows = _rows(
        [
            ("商户订单号 out_trade_no", trade.out_trade_no),
            ("商品 description", trade.description),
            ("交易类型 type", trade.trade_type),
            ("创建时间 created", rfc3339(trade.created_at)),
            ("支付时间 paid", rfc3339(trade.success_time)),
        ]
    )
    qr_html = f'<div class="qr" title="{esc(qr)}">{qr_svg(qr)}</div>' if qr and payable else ""
    content = template("cashier.html").substitute(
        amount=yuan(trade.amount),
        rows=rows,
        qr=qr_html,
        state=esc(state_label or trade.state),
        buttons=buttons,
        note="Sandbox cashier: Pay marks the trade paid and sends the gateway's signed notification.",
    )
    return page(gateway, f"{trade.out_trade_no} - cashier", content)


def render_result(gateway: str, message: str, trade: Trade | None, link: str = "", status: int = 200) -> Response:
    rows = _rows([("商户订单号", trade.out_trade_no), ("状态", trade.state)]) if trade else ""
    link_html = f'<p><a href="{esc(link)}">返回商户 / back to merchant</a></p>' if link else ""
    content = template("result.html").substitute(message=esc(message), rows=rows, link=link_html)
    return page(gateway, message, content, status)


def register(sb: Sandbox) -> None:
    def index(req: Request) -> Response:
        with sb.store.lock:
            trades = [t for t in sb.store.trades.values() if t.state in ("NOTPAY", "PAYERROR")]
        rows = (
            "".join(
                f'<tr><td>{esc(t.gateway)}</td><td><a href="/cashier/{t.gateway}/{quote(t.out_trade_no, safe="")}">'
                f"{esc(t.out_trade_no)}</a> ¥{yuan(t.amount)}</td></tr>"
                for t in sorted(trades, key=lambda t: t.created_at, reverse=True)
            )
            or "<tr><td>none</td><td></td></tr>"
        )
        return page("", "Sandbox cashier", template("index.html").substitute(rows=rows))

    def show(req: Request, gateway: str, no: str) -> Response:
        gw = sb.gateways[gateway]
        with sb.store.lock:
            trade = sb.store.trade(gateway, no)
        if trade is None:
            return render_result(gateway, "订单不存在 / unknown transaction", None, status=404)
        redirect = req.query.get("redirect") or req.query.get("redirect_url") or ""
        return render_cashier(gateway, trade, redirect=redirect, qr=gw.cashier_qr(trade))

    def act(req: Request, gateway: str, no: str, action: str) -> Response:
        gw = sb.gateways[gateway]
        form = req.form()
        redirect = form.get("redirect") or req.query.get("redirect") or ""
        try:
            trade = gw.complete(no) if action == "pay" else gw.fail(no)
        except LookupError:
            return render_result(gateway, "订单不存在 / unknown transaction", None, status=404)
        except ValueError as exc:
            with sb.store.lock:
                trade = sb.store.trade(gateway, no)
            return render_result(gateway, f"无法操作 / not possible: {exc}", trade, status=409)
        if action == "pay":
            location = gw.return_location(trade, redirect)
            if location:
                return Response.redirect(location)
            return render_result(gateway, "支付成功 / paid", trade)
        return render_result(gateway, "支付失败 / payment failed", trade, link=redirect)

    sb.router.add("GET", r"/cashier/?", index)
    sb.router.add("GET", r"/cashier/(?P<gateway>wechat|alipay|wallyt)/(?P<no>[^/]+)", show)
    sb.router.add(
        "POST",
        r"/cashier/(?P<gateway>wechat|alipay|wallyt)/(?P<no>[^/]+)/(?P<action>pay|fail)",
        lambda req, gateway, no, action: act(req, gateway, no, action),
    )
