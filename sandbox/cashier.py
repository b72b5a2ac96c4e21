"""Cashier pages where a person (or a test) presses Pay / Fail, for all three gateways."""

from __future__ import annotations

import html
import re
import string
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlencode

import qrcode
import qrcode.image.svg

from .bills import yuan
from .server import Request, Response
from .state import CST, Trade, rfc3339

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
    """Label and value; a number (no spaces) is kept on one line (``<code>``), never broken in the middle."""
    return "".join(
        f"<tr><td>{esc(k)}</td><td>{f'<code>{esc(v)}</code>' if ' ' not in str(v) else esc(v)}</td></tr>"
        for k, v in pairs
        if v not in (None, "")
    )


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


PAGE_SIZE = 25
PRODUCTS = {  # trade_type -> how a developer knows the channel
    "JSAPI": "mini-program (JSAPI)",
    "NATIVE": "QR code (Native)",
    "MWEB": "mobile browser (H5)",
    "FAST_INSTANT_TRADE_PAY": "computer (page pay)",
    "QUICK_WAP_WAY": "phone (WAP pay)",
    "pay.weixin.jspay": "WeChat mini-program (jspay)",
}


def _local(value: Any) -> str:
    return value.astimezone(CST).strftime("%Y-%m-%d %H:%M:%S") if value else ""


def render_index(trades: list[Trade], *, query: str = "", page_arg: str = "1") -> Response:
    """Pending trades (given in creation order), newest first, ``PAGE_SIZE`` a page; ``query`` matches
    our payment number (out_trade_no) or the order in the description, case-insensitively."""
    needle = query.lower()
    if needle:
        trades = [t for t in trades if needle in t.out_trade_no.lower() or needle in (t.description or "").lower()]
    # created_at has whole seconds: within one second the store's (creation) order decides
    order = {id(t): i for i, t in enumerate(trades)}
    trades = sorted(trades, key=lambda t: (t.created_at, order[id(t)]), reverse=True)
    pages = max(1, -(-len(trades) // PAGE_SIZE))
    try:
        page_no = min(max(int(page_arg), 1), pages)
    except ValueError:
        page_no = 1
    shown = trades[(page_no - 1) * PAGE_SIZE : page_no * PAGE_SIZE]
    rows = "".join(_index_row(t) for t in shown) or '<tr><td colspan="4">none</td></tr>'

    def link(n: int, label: str) -> str:
        params = {"page": str(n), **({"q": query} if query else {})}
        return f'<a href="/cashier/?{esc(urlencode(params))}">{label}</a>'

    pager = " ".join(
        part
        for part in (
            link(page_no - 1, "&lsaquo; newer") if page_no > 1 else "",
            f"page {page_no} of {pages}",
            link(page_no + 1, "older &rsaquo;") if page_no < pages else "",
        )
        if part
    )
    content = template("index.html").substitute(
        rows=rows, query=esc(query), count=len(trades), pager=pager, plural="" if len(trades) == 1 else "s"
    )
    return page("", "Sandbox cashier", content)


def _index_row(t: Trade) -> str:
    brand = BRANDS.get(t.gateway, (t.gateway, ""))[0]
    product = PRODUCTS.get(t.trade_type, t.trade_type)
    href = f"/cashier/{t.gateway}/{quote(t.out_trade_no, safe='')}"
    return (
        f'<tr><td class="nowrap">{esc(_local(t.created_at))}</td>'
        f"<td>{esc(brand)}<br><small>{esc(product)}</small></td>"
        f'<td><a href="{esc(href)}"><code>{esc(t.out_trade_no)}</code></a><br><small>{esc(t.description)}</small></td>'
        f'<td class="num amount-cell">¥{yuan_grouped(t.amount)}</td></tr>'
    )


def yuan_grouped(fen: int) -> str:
    """``332271`` -> ``3,322.71`` (the cashier is read by people)."""
    return f"{fen // 100:,}.{fen % 100:02d}"


# the sandbox's icon (a grey square with "S"): browsers ask every server for /favicon.ico
FAVICON = (
    b'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 16 16"><rect width="16" height="16" rx="3" fill="#555"/>'
    b'<text x="8" y="12.5" font-family="sans-serif" font-size="12" font-weight="bold" fill="#fff" '
    b'text-anchor="middle">S</text></svg>'
)


def register(sb: Sandbox) -> None:
    def favicon(req: Request) -> Response:
        return Response(body=FAVICON, content_type="image/svg+xml", headers={"Cache-Control": "max-age=86400"})

    def index(req: Request) -> Response:
        query = req.query.get("q", "").strip()
        with sb.store.lock:
            trades = [t for t in sb.store.trades.values() if t.state in ("NOTPAY", "PAYERROR")]
        return render_index(trades, query=query, page_arg=req.query.get("page", "1"))

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

    sb.router.add("GET", r"/favicon\.ico", favicon)
    sb.router.add("GET", r"/cashier/?", index)
    sb.router.add("GET", r"/cashier/(?P<gateway>wechat|alipay|wallyt)/(?P<no>[^/]+)", show)
    sb.router.add(
        "POST",
        r"/cashier/(?P<gateway>wechat|alipay|wallyt)/(?P<no>[^/]+)/(?P<action>pay|fail)",
        lambda req, gateway, no, action: act(req, gateway, no, action),
    )
