"""JSON control API for tests and scripts (see sandbox/README.md)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .faults import TARGETS, FaultError
from .server import Request, Response

if TYPE_CHECKING:
    from .server import Sandbox

GW = r"(?P<gateway>wechat|alipay|wallyt)"


def _body(req: Request) -> dict[str, Any]:
    try:
        data = req.json()
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def _err(status: int, message: str) -> Response:
    return Response.json({"error": message}, status)


def register(sb: Sandbox) -> None:
    r = sb.router

    def healthz(req: Request) -> Response:
        return Response.json({"status": "ok", "base_url": sb.base_url})

    def config(req: Request) -> Response:
        return Response.json(
            {
                "base_url": req.base_url,
                "data_dir": str(sb.data_dir),
                "notify_scale": sb.notify_scale,
                "refund_settle_seconds": sb.refund_settle_seconds,
                "credentials": sb.keys.credentials,
                "fault_targets": TARGETS,
            }
        )

    def reset(req: Request) -> Response:
        sb.reset()
        return Response.json({"ok": True})

    def trade_json(gateway: str, t: Any) -> dict[str, Any]:
        data = t.to_json()
        data["wire"] = sb.gateways[gateway].describe(t)
        data["refunds"] = [x.to_json() for x in sb.store.refunds_of(t)]
        return data

    def list_trades(req: Request, gateway: str | None = None) -> Response:
        gateway = gateway or req.query.get("gateway")
        state = req.query.get("state")
        with sb.store.lock:
            items = [
                trade_json(t.gateway, t)
                for t in sb.store.trades.values()
                if (not gateway or t.gateway == gateway) and (not state or t.state == state)
            ]
        return Response.json({"transactions": items})

    def get_trade(req: Request, gateway: str, no: str) -> Response:
        with sb.store.lock:
            t = sb.store.trade(gateway, no) or sb.store.trade(gateway, transaction_id=no)
            if t is None:
                return _err(404, f"no {gateway} transaction {no}")
            return Response.json(trade_json(gateway, t))

    def pay(req: Request, gateway: str, no: str) -> Response:
        body = _body(req)
        try:
            t = sb.gateways[gateway].complete(no, **{k: v for k, v in body.items() if k in _PAY_ARGS[gateway]})
        except LookupError as exc:
            return _err(404, str(exc))
        except ValueError as exc:
            return _err(409, str(exc))
        return get_trade(req, gateway, t.out_trade_no)

    def fail(req: Request, gateway: str, no: str) -> Response:
        try:
            t = sb.gateways[gateway].fail(no)
        except LookupError as exc:
            return _err(404, str(exc))
        except ValueError as exc:
            return _err(409, str(exc))
        return get_trade(req, gateway, t.out_trade_no)

    def expire(req: Request, gateway: str, no: str) -> Response:
        try:
            t = sb.gateways[gateway].expire(no)
        except LookupError as exc:
            return _err(404, str(exc))
        except ValueError as exc:
            return _err(409, str(exc))
        return get_trade(req, gateway, t.out_trade_no)

    def notify_again(req: Request, gateway: str, no: str) -> Response:
        """Send the notification of a paid trade again (a gateway retry under a new id)."""
        with sb.store.lock:
            t = sb.store.trade(gateway, no)
        if t is None:
            return _err(404, f"no {gateway} transaction {no}")
        try:
            sb.gateways[gateway].notify_trade(t)
        except ValueError as exc:
            return _err(409, str(exc))
        return Response.json({"ok": True})

    def notify_refund_again(req: Request, gateway: str, no: str) -> Response:
        with sb.store.lock:
            r = sb.store.refunds.get((gateway, no)) or next(
                (x for x in sb.store.refunds.values() if x.gateway == gateway and x.out_refund_no == no), None
            )
        if r is None:
            return _err(404, f"no {gateway} refund {no}")
        try:
            sb.gateways[gateway].notify_refund(r)
        except ValueError as exc:
            return _err(409, str(exc))
        return Response.json({"ok": True})

    def return_again(req: Request, no: str) -> Response:
        """Where Alipay's cashier would send the payer back for a trade (signed return_url parameters)."""
        with sb.store.lock:
            t = sb.store.trade("alipay", no)
        if t is None:
            return _err(404, f"no alipay transaction {no}")
        return Response.json({"location": sb.gateways["alipay"].return_location(t, "")})

    def list_refunds(req: Request, gateway: str | None = None) -> Response:
        gateway = gateway or req.query.get("gateway")
        with sb.store.lock:
            items = [x.to_json() for x in sb.store.refunds.values() if not gateway or x.gateway == gateway]
        return Response.json({"refunds": items})

    def get_refund(req: Request, gateway: str, no: str) -> Response:
        with sb.store.lock:
            x = sb.store.refunds.get((gateway, no))
            if x is None:
                return _err(404, f"no {gateway} refund {no}")
            return Response.json(x.to_json())

    def settle(req: Request, gateway: str, no: str) -> Response:
        body = _body(req)
        try:
            sb.gateways[gateway].settle_refund(
                no, str(body.get("status", "SUCCESS")).upper(), success_time=body.get("success_time")
            )
        except LookupError as exc:
            return _err(404, str(exc))
        except ValueError as exc:
            return _err(409, str(exc))
        return get_refund(req, gateway, no)

    def notifications(req: Request, gateway: str | None = None) -> Response:
        q = req.query
        ref = {k: q[k] for k in ("out_trade_no", "out_refund_no") if q.get(k)}
        items = sb.notifier.list(gateway or q.get("gateway"), ref)
        if q.get("event"):
            items = [d for d in items if d["event"] == q["event"]]
        if q.get("state"):
            items = [d for d in items if d["state"] == q["state"]]
        return Response.json({"notifications": items})

    def notification(req: Request, nid: str) -> Response:
        d = sb.notifier.get(nid)
        return Response.json(d.to_json()) if d else _err(404, f"no notification {nid}")

    def redeliver(req: Request, nid: str) -> Response:
        d = sb.notifier.redeliver(nid)
        return Response.json(d.to_json()) if d else _err(404, f"no notification {nid}")

    def faults(req: Request) -> Response:
        if req.method == "GET":
            return Response.json({"faults": sb.faults.list(), "targets": TARGETS})
        if req.method == "DELETE":
            return Response.json({"cleared": sb.faults.clear(req.query.get("target"))})
        body = req.json() if req.body else {}
        specs = body if isinstance(body, list) else [body]
        try:
            added = [sb.faults.add(spec).to_json() for spec in specs]
        except (FaultError, ValueError, TypeError) as exc:
            return _err(400, str(exc))
        return Response.json({"added": added, "faults": sb.faults.list()}, 201)

    def fault_plan(req: Request) -> Response:
        """Random faults (a seeded plan, see `faults.Plan`); `{"rate": 0}` stops them."""
        if req.method == "POST":
            try:
                sb.faults.set_plan(_body(req))
            except (FaultError, ValueError, TypeError) as exc:
                return _err(400, str(exc))
        return Response.json(sb.faults.plan())

    def clear_faults(req: Request) -> Response:
        return Response.json({"cleared": sb.faults.clear(_body(req).get("target"))})

    def wechat_signing(req: Request) -> Response:
        """WeChat's key switch: sign answers and notifications under `cert` or `pubkey`, or `request` (follow
        the request's Wechatpay-Serial, the default)."""
        gw = sb.gateways["wechat"]
        if req.method == "POST":
            mode = str(_body(req).get("mode", ""))
            if mode not in ("cert", "pubkey", "request"):
                return _err(400, "mode is one of cert, pubkey, request")
            gw.signing_override = None if mode == "request" else mode
        return Response.json({"mode": gw.signing_override or "request"})

    def alipay_notify_charset(req: Request) -> Response:
        """Send Alipay notifies in `gbk` (as Alipay sometimes does) or `utf-8` (the default)."""
        gw = sb.gateways["alipay"]
        if req.method == "POST":
            charset = str(_body(req).get("charset", "")).lower()
            if charset not in ("utf-8", "gbk"):
                return _err(400, "charset is one of utf-8, gbk")
            gw.notify_charset = charset
        return Response.json({"charset": gw.notify_charset})

    r.add("GET", r"/healthz", healthz)
    r.add("GET", r"/control/config", config)
    r.add("POST", r"/control/reset", reset)
    r.add("GET", r"/control/transactions", list_trades)
    r.add("GET", rf"/control/{GW}/transactions", list_trades)
    r.add("GET", rf"/control/{GW}/transactions/(?P<no>[^/]+)", get_trade)
    r.add("POST", rf"/control/{GW}/transactions/(?P<no>[^/]+)/pay", pay)
    r.add("POST", rf"/control/{GW}/transactions/(?P<no>[^/]+)/fail", fail)
    r.add("POST", rf"/control/{GW}/transactions/(?P<no>[^/]+)/expire", expire)
    r.add("POST", rf"/control/{GW}/transactions/(?P<no>[^/]+)/notify", notify_again)
    r.add("GET", r"/control/alipay/transactions/(?P<no>[^/]+)/return", return_again)
    r.add("POST", rf"/control/{GW}/refunds/(?P<no>[^/]+)/notify", notify_refund_again)
    r.add("GET", r"/control/refunds", list_refunds)
    r.add("GET", rf"/control/{GW}/refunds", list_refunds)
    r.add("GET", rf"/control/{GW}/refunds/(?P<no>[^/]+)", get_refund)
    r.add("POST", rf"/control/{GW}/refunds/(?P<no>[^/]+)/settle", settle)
    r.add("GET", r"/control/notifications", notifications)
    r.add("GET", rf"/control/{GW}/notifications", notifications)
    r.add("GET", r"/control/notifications/(?P<nid>[^/]+)", notification)
    r.add("POST", r"/control/notifications/(?P<nid>[^/]+)/redeliver", redeliver)
    r.add("GET,POST,DELETE", r"/control/faults", faults)
    r.add("GET,POST", r"/control/faults/plan", fault_plan)
    r.add("GET,POST", r"/control/wechat/signing", wechat_signing)
    r.add("GET,POST", r"/control/alipay/notify-charset", alipay_notify_charset)
    r.add("POST", r"/control/faults/clear", clear_faults)


_PAY_ARGS = {
    "wechat": {"success_time", "openid", "bank_type"},
    "alipay": {"success_time", "buyer_id", "buyer_logon_id"},
    "wallyt": {"success_time", "openid", "bank_type"},
}
