# ruff: noqa: RUF001  (Chinese protocol text uses full-width punctuation)
"""Fake WeChat Pay Score (支付分) service orders: create, query, cancel, complete, sync, and the
``PAYSCORE.USER_CONFIRM`` / ``PAYSCORE.USER_PAID`` notifications.

Protocol facts relied on (PROTOCOLS F.3, which cites the WeChat pages and the wechatpayv3 2.0.4 source):

* create ``POST /v3/payscore/serviceorder`` (``appid, service_id, out_order_no`` (<= 32,
  ``[0-9A-Za-z_-|*]``), ``service_introduction`` (<= 20), ``time_range.start_time``, ``risk_fund{name,
  amount}``, ``notify_url``, ``need_user_confirm``); with confirmation the answer is ``state=CREATED`` with
  ``order_id`` and ``package`` (what the mini-program's ``wx.openBusinessView('wxpayScoreUse')`` needs).
  An identical repeat is idempotent.
* query ``GET /v3/payscore/serviceorder?service_id&appid&out_order_no`` (wechatpayv3 always adds
  ``appid``): the order object.
* states: ``CREATED`` (-> ``EXPIRED`` after 30 untouched days), ``DOING`` with ``state_description``
  ``USER_CONFIRM`` (the user confirmed) or ``MCH_COMPLETE`` (we completed it; WeChat collects, retrying
  until it succeeds: ``collection.state`` ``USER_PAYING``), ``DONE`` (collected: ``collection.state``
  ``USER_PAID``), ``REVOKED`` (cancelled).
* cancel ``POST …/{out_order_no}/cancel {appid, service_id, reason}`` works in ``CREATED``,
  ``USER_CONFIRM`` and ``USER_PAYING``.
* complete ``POST …/{out_order_no}/complete {appid, service_id, post_payments, total_amount}``, only in
  ``DOING/USER_CONFIRM``; ``total_amount = Σ post_payments.amount - Σ post_discounts.amount`` and, deposit
  free, ``total_amount <= risk_fund.amount``.
* sync ``POST …/{out_order_no}/sync {appid, service_id, type: "Order_Paid", detail{paid_time}}`` only in
  ``DOING/MCH_COMPLETE`` while collecting (pay.weixin.qq.com/doc/v3/partner/4013194292): -> ``DONE``.
* notifications: the payment envelope (``PAYSCORE.USER_CONFIRM`` on confirmation, ``PAYSCORE.USER_PAID``
  when collected), ``original_type`` ``payscore``, the plaintext is the order object.

Not documented by WeChat, chosen here: a second cancel of a ``REVOKED`` order answers as the first
(idempotent); a user who declines leaves the order ``CREATED`` and nothing is notified (WeChat notifies
only confirmation and payment); ``collection.details[].paid_type`` is ``NEWTON``.

Control API (tests): ``/control/wechat/payscore/{out_order_no}`` (GET), ``…/confirm`` (the user confirms),
``…/decline`` (the user declines), ``…/expire`` (30 days pass unconfirmed), ``…/collect {"outcome":
"unpaid"}`` before completion (the user's account cannot be debited: the order stays ``MCH_COMPLETE`` /
``USER_PAYING``, no ``USER_PAID``) or ``{"outcome": "paid"}`` (collect now).
"""

from __future__ import annotations

import re
import secrets
import uuid
from typing import TYPE_CHECKING, Any

from . import wechat_crypto as wc
from .faults import mutated
from .server import Request, Response
from .state import now_cst

if TYPE_CHECKING:
    from .server import Sandbox
    from .wechat import WeChatGateway

OUT_ORDER_NO_RE = re.compile(r"^[0-9A-Za-z_\-|*]{1,32}$")
RISK_FUND_NAMES = ("DEPOSIT", "ADVANCE", "CASH_DEPOSIT", "ESTIMATE_ORDER_COST")
PAID_TIME_RE = re.compile(r"^\d{8}(\d{6})?$")
TARGET = "wechat.payscore"


class PayScore:
    def __init__(self, sb: Sandbox, wechat: WeChatGateway) -> None:
        self.sb, self.wx = sb, wechat
        self.creds = wechat.creds
        r = sb.router
        r.add("POST", r"/v3/payscore/serviceorder", self.create)
        r.add("GET", r"/v3/payscore/serviceorder", self.query)
        r.add("POST", r"/v3/payscore/serviceorder/(?P<no>[^/]+)/cancel", self.cancel)
        r.add("POST", r"/v3/payscore/serviceorder/(?P<no>[^/]+)/complete", self.complete)
        r.add("POST", r"/v3/payscore/serviceorder/(?P<no>[^/]+)/sync", self.sync)
        no = r"/control/wechat/payscore/(?P<no>[^/]+)"
        r.add("GET", no, self.control_get)
        r.add("POST", no + r"/confirm", self.control_confirm)
        r.add("POST", no + r"/decline", self.control_decline)
        r.add("POST", no + r"/expire", self.control_expire)
        r.add("POST", no + r"/collect", self.control_collect)

    # ================================================================ shapes
    @property
    def service_id(self) -> str:
        return self.creds["payscore_service_id"]

    def _public(self, order: dict[str, Any]) -> dict[str, Any]:
        """The order object of a query answer and of the notifications."""
        keys = (
            "appid", "mchid", "service_id", "out_order_no", "service_introduction", "state", "state_description",
            "total_amount", "post_payments", "post_discounts", "risk_fund", "time_range", "attach", "notify_url",
            "order_id", "need_collection", "collection", "openid",
        )  # fmt: skip
        return {k: order[k] for k in keys if order.get(k) not in (None, "")}

    def _order(self, no: str) -> dict[str, Any]:
        order = self.sb.store.service_orders.get(no)
        if order is None:
            raise self._api_error(404, "ORDER_NOT_EXIST", "订单不存在")
        return order

    @staticmethod
    def _api_error(status: int, code: str, message: str, field: str | None = None) -> Exception:
        from .wechat import ApiError

        return ApiError(status, code, message, {"field": field} if field else None)

    def _identify(self, data: dict[str, Any]) -> None:
        if data.get("service_id") != self.service_id:
            raise self._api_error(400, "PARAM_ERROR", "service_id 不正确", "service_id")
        if data.get("appid") not in (self.creds["appid"], self.creds["mini_appid"]):
            raise self._api_error(400, "APPID_MCHID_NOT_MATCH", "appid和mch_id不匹配", "appid")

    # ================================================================ endpoints
    def create(self, req: Request) -> Response:
        return self.wx._run(req, TARGET, lambda rq, mode: self._create(rq, mode))

    def _create(self, req: Request, mode: str) -> tuple[int, bytes]:
        data = self.wx._json_body(req)
        self._identify(data)
        no = data.get("out_order_no")
        if not isinstance(no, str) or not OUT_ORDER_NO_RE.match(no):
            raise self._api_error(
                400, "PARAM_ERROR", "out_order_no 只能是数字、大小写字母_-|*，长度不超过32", "out_order_no"
            )
        intro = data.get("service_introduction")
        if not isinstance(intro, str) or not 0 < len(intro) <= 20:
            raise self._api_error(400, "PARAM_ERROR", "service_introduction 长度不能超过20", "service_introduction")
        time_range = data.get("time_range")
        if not isinstance(time_range, dict) or not time_range.get("start_time"):
            raise self._api_error(400, "PARAM_ERROR", "time_range.start_time 必填", "time_range.start_time")
        risk = data.get("risk_fund")
        amount = risk.get("amount") if isinstance(risk, dict) else None
        if not isinstance(risk, dict) or risk.get("name") not in RISK_FUND_NAMES:
            raise self._api_error(400, "PARAM_ERROR", "risk_fund.name 不正确", "risk_fund.name")
        if type(amount) is not int or amount <= 0:
            raise self._api_error(
                400, "PARAM_ERROR", "risk_fund.amount 必须为大于0的整数（单位：分）", "risk_fund.amount"
            )
        notify_url = data.get("notify_url")
        if not isinstance(notify_url, str) or not re.match(r"^https?://\S+$", notify_url):
            raise self._api_error(400, "PARAM_ERROR", "notify_url 必填", "notify_url")
        if data.get("need_user_confirm") is False:
            raise self._api_error(403, "NO_AUTH", "本服务未开通免确认模式")  # the sandbox's service needs confirmation
        canonical = {k: data.get(k) for k in ("appid", "service_introduction", "time_range", "risk_fund", "attach")}
        store = self.sb.store
        with store.lock:
            existing = store.service_orders.get(no)
            if existing is not None:
                if existing["request"] != canonical:
                    raise self._api_error(400, "INVALID_REQUEST", "商户订单号重复，且请求参数与原请求不一致")
                return 200, wc.dumps(existing["answer"])
            order: dict[str, Any] = {
                "appid": data["appid"],
                "mchid": self.creds["mchid"],
                "service_id": self.service_id,
                "out_order_no": no,
                "service_introduction": intro,
                "state": "CREATED",
                "post_payments": data.get("post_payments") or [],
                "risk_fund": {"name": risk["name"], "amount": amount},
                "time_range": time_range,
                "attach": data.get("attach") or "",
                "notify_url": notify_url,
                "order_id": store.next_id("1000", 32),
                "need_collection": True,
                "sign_mode": mode,
                "request": canonical,
                "collect": "paid",
            }
            order["package"] = "DJIOSQPYWDxsa" + secrets.token_urlsafe(24)
            order["answer"] = {**self._public(order), "package": order["package"]}
            store.save_service_order(order)
            return 200, wc.dumps(order["answer"])

    def query(self, req: Request) -> Response:
        return self.wx._run(req, TARGET, lambda rq, mode: self._query(rq))

    def _query(self, req: Request) -> tuple[int, bytes]:
        q = req.query
        self._identify(q)
        if not q.get("out_order_no") or q.get("query_id"):
            raise self._api_error(400, "PARAM_ERROR", "out_order_no 与 query_id 必填其一", "out_order_no")
        with self.sb.store.lock:
            return 200, wc.dumps(self._public(self._order(q["out_order_no"])))

    def cancel(self, req: Request, no: str) -> Response:
        return self.wx._run(req, TARGET, lambda rq, mode: self._cancel(rq, no))

    def _cancel(self, req: Request, no: str) -> tuple[int, bytes]:
        data = self.wx._json_body(req)
        self._identify(data)
        reason = data.get("reason")
        if not isinstance(reason, str) or not 0 < len(reason) <= 50:
            raise self._api_error(400, "PARAM_ERROR", "reason 必填，长度不能超过50", "reason")
        with self.sb.store.lock:
            order = self._order(no)
            cancellable = order["state"] == "CREATED" or (
                order["state"] == "DOING"
                and (order.get("state_description") == "USER_CONFIRM" or self._collecting(order))
            )
            if order["state"] != "REVOKED":
                if not cancellable:
                    raise self._api_error(400, "INVALID_REQUEST", f"订单状态为{order['state']}，不能取消")
                order.update(state="REVOKED", state_description=None, cancel_reason=reason)
                self.sb.store.save_service_order(order)
            answer = {k: order[k] for k in ("appid", "mchid", "out_order_no", "service_id", "order_id")}
            return 200, wc.dumps(answer)

    @staticmethod
    def _collecting(order: dict[str, Any]) -> bool:
        return (order.get("collection") or {}).get("state") == "USER_PAYING"

    def complete(self, req: Request, no: str) -> Response:
        return self.wx._run(req, TARGET, lambda rq, mode: self._complete(rq, no))

    def _complete(self, req: Request, no: str) -> tuple[int, bytes]:
        data = self.wx._json_body(req)
        self._identify(data)
        payments, discounts, total = (
            data.get("post_payments"),
            data.get("post_discounts") or [],
            data.get("total_amount"),
        )
        if not isinstance(payments, list) or not payments or not isinstance(discounts, list):
            raise self._api_error(400, "PARAM_ERROR", "post_payments 必填", "post_payments")
        amounts = [p.get("amount") if isinstance(p, dict) else None for p in payments + discounts]
        if type(total) is not int or total < 0 or any(type(a) is not int or a < 0 for a in amounts):
            raise self._api_error(400, "PARAM_ERROR", "金额必须为非负整数（单位：分）", "total_amount")
        if total != sum(amounts[: len(payments)]) - sum(amounts[len(payments) :]):
            raise self._api_error(400, "PARAM_ERROR", "total_amount 与后付费项目金额不一致", "total_amount")
        paid_now = False
        with self.sb.store.lock:
            order = self._order(no)
            if order.get("state_description") == "MCH_COMPLETE" or order["state"] == "DONE":
                if order.get("total_amount") != total:
                    raise self._api_error(400, "INVALID_REQUEST", "订单已完结，且金额与原请求不一致")
                return 200, wc.dumps(order["complete_answer"])  # the same completion again
            if order["state"] != "DOING" or order.get("state_description") != "USER_CONFIRM":
                raise self._api_error(400, "INVALID_REQUEST", f"订单状态为{order['state']}，不能完结")
            if total > order["risk_fund"]["amount"]:
                raise self._api_error(400, "PARAM_ERROR", "total_amount 不能超过 risk_fund.amount", "total_amount")
            order.update(
                state_description="MCH_COMPLETE",
                total_amount=total,
                post_payments=payments,
                post_discounts=discounts,
                collection={"state": "USER_PAYING", "total_amount": total, "paying_amount": total, "paid_amount": 0},
            )
            if isinstance(data.get("time_range"), dict):
                order["time_range"] = {**order["time_range"], **data["time_range"]}
            order["complete_answer"] = self._public(order)
            self.sb.store.save_service_order(order)
            answer = order["complete_answer"]
            paid_now = order.get("collect") == "paid"
        if paid_now:
            self.collect(no)
        return 200, wc.dumps(answer)

    def sync(self, req: Request, no: str) -> Response:
        return self.wx._run(req, TARGET, lambda rq, mode: self._sync(rq, no))

    def _sync(self, req: Request, no: str) -> tuple[int, bytes]:
        data = self.wx._json_body(req)
        self._identify(data)
        detail = data.get("detail")
        paid_time = detail.get("paid_time") if isinstance(detail, dict) else None
        if data.get("type") != "Order_Paid" or not isinstance(paid_time, str) or not PAID_TIME_RE.match(paid_time):
            raise self._api_error(400, "PARAM_ERROR", "type 须为 Order_Paid，detail.paid_time 必填", "detail.paid_time")
        with self.sb.store.lock:
            order = self._order(no)
            if order["state"] != "DOING" or not self._collecting(order):
                raise self._api_error(400, "INVALID_REQUEST", "订单不是待支付状态，不能同步")
            order.update(state="DONE", state_description=None)
            order["collection"] = {**order["collection"], "state": "USER_PAID", "paying_amount": 0}
            order["collection"]["paid_amount"] = order["total_amount"]
            self.sb.store.save_service_order(order)
            return 200, wc.dumps(self._public(order))

    # ================================================================ what the user and WeChat do
    def confirm(self, no: str, *, openid: str | None = None) -> dict[str, Any]:
        with self.sb.store.lock:
            order = self._known(no)
            if order["state"] != "CREATED":
                raise ValueError(f"service order {no} is {order['state']}, only CREATED can be confirmed")
            order.update(state="DOING", state_description="USER_CONFIRM")
            order["openid"] = openid or "o" + secrets.token_urlsafe(20)[:27]
            self.sb.store.save_service_order(order)
            plaintext = self._public(order)
        self._notify("PAYSCORE.USER_CONFIRM", order, plaintext)
        return order

    def collect(self, no: str) -> dict[str, Any]:
        """WeChat's debit succeeds: DONE, collection USER_PAID, ``PAYSCORE.USER_PAID``."""
        with self.sb.store.lock:
            order = self._known(no)
            if order["state"] != "DOING" or not self._collecting(order):
                raise ValueError(f"service order {no} is not being collected")
            total = order["total_amount"]
            detail = {
                "seq": 1,
                "amount": total,
                "paid_type": "NEWTON",
                "paid_time": now_cst().strftime("%Y%m%d%H%M%S"),
                "transaction_id": self.sb.store.next_id("42000", 28),
            }
            order.update(state="DONE", state_description=None)
            order["collection"] = {
                "state": "USER_PAID",
                "total_amount": total,
                "paying_amount": 0,
                "paid_amount": total,
                "details": [detail],
            }
            self.sb.store.save_service_order(order)
            plaintext = self._public(order)
        self._notify("PAYSCORE.USER_PAID", order, plaintext)
        return order

    def _known(self, no: str) -> dict[str, Any]:
        order = self.sb.store.service_orders.get(no)
        if order is None:
            raise LookupError(f"no service order {no}")
        return order

    def _notify(self, event: str, order: dict[str, Any], plaintext: dict[str, Any]) -> None:
        mutation = self.sb.message_fault("wechat.notify")
        plaintext = mutated(plaintext, mutation)
        _, serial, timestamp = self.wx.signer(order.get("sign_mode", "cert"), mutation)
        body = wc.build_notification_body(
            apiv3_key=self.sb.keys.apiv3_key,
            event_type=event,
            plaintext=plaintext,
            original_type="payscore",
            notify_id=str(uuid.uuid4()),
        )
        rogue = mutation is not None and mutation.sign_with == "rogue"
        spec = {"body": body.decode("utf-8"), "serial": serial, "timestamp": timestamp, "rogue": rogue}
        ref = {"out_order_no": order["out_order_no"]}
        self.sb.notifier.submit(gateway="wechat", event=event, url=order["notify_url"], ref=ref, spec=spec)

    # ================================================================ control API
    def _control(self, fn: Any) -> Response:
        try:
            order = fn()
        except LookupError as exc:
            return Response.json({"error": str(exc)}, 404)
        except ValueError as exc:
            return Response.json({"error": str(exc)}, 409)
        with self.sb.store.lock:
            return Response.json({**self._public(order), "collect": order.get("collect"), "package": order["package"]})

    def control_get(self, req: Request, no: str) -> Response:
        return self._control(lambda: self._known(no))

    def control_confirm(self, req: Request, no: str) -> Response:
        body = req.json() if req.body else {}
        return self._control(lambda: self.confirm(no, openid=(body or {}).get("openid")))

    def control_decline(self, req: Request, no: str) -> Response:
        def decline() -> dict[str, Any]:
            with self.sb.store.lock:
                order = self._known(no)
                if order["state"] != "CREATED":
                    raise ValueError(f"service order {no} is {order['state']}, only CREATED can be declined")
                order["declined"] = True  # WeChat notifies nothing: the order stays CREATED
                self.sb.store.save_service_order(order)
                return order

        return self._control(decline)

    def control_expire(self, req: Request, no: str) -> Response:
        def expire() -> dict[str, Any]:
            with self.sb.store.lock:
                order = self._known(no)
                if order["state"] != "CREATED":
                    raise ValueError(f"service order {no} is {order['state']}, only CREATED expires")
                order["state"] = "EXPIRED"
                self.sb.store.save_service_order(order)
                return order

        return self._control(expire)

    def control_collect(self, req: Request, no: str) -> Response:
        outcome = ((req.json() if req.body else {}) or {}).get("outcome")
        if outcome not in ("paid", "unpaid"):
            return Response.json({"error": "outcome is one of paid, unpaid"}, 400)

        def collect() -> dict[str, Any]:
            with self.sb.store.lock:
                order = self._known(no)
                order["collect"] = outcome
                self.sb.store.save_service_order(order)
                collecting = self._collecting(order)
            return self.collect(no) if outcome == "paid" and collecting else order

        return self._control(collect)
