"""WeChat Pay Score (支付分) service orders over the real ``wechatpayv3`` SDK: pay after use.

``PayScoreCalls`` is mixed into ``WeChatGateway`` (the same SDK client, error translation and signature
checks as every WeChat call). Protocol facts (PROTOCOLS F.3, citing pay.weixin.qq.com and the installed
wechatpayv3 2.0.4 ``payscore.py``):

* ``payscore_create`` -> ``POST /v3/payscore/serviceorder``; with ``need_user_confirm`` the answer is
  ``state=CREATED`` with ``package``, which the mini-program hands to ``wx.openBusinessView({businessType:
  'wxpayScoreUse', extraData: {mch_id, package, timestamp, nonce_str, sign_type: 'HMAC-SHA256', sign}})``.
  ``sign`` is the upper-hex HMAC-SHA256 of the sorted ``k=v&`` string + ``key=K``; wechatpayv3 signs with
  the APIv3 key (``Core.sign(..., SignType.HMAC_SHA256)``), a WeChat community answer says the APIv2 key
  (PROTOCOLS F.3 "Which key is K?", unconfirmed): we use the SDK's.
* ``payscore_query(service_id, out_order_no)`` -> ``GET /v3/payscore/serviceorder`` (the SDK adds appid).
* ``payscore_cancel`` (``CREATED``, ``USER_CONFIRM`` or while collecting), ``payscore_complete``
  (``DOING/USER_CONFIRM`` only; ``total_amount`` an int, ``= Σ post_payments.amount``, <= ``risk_fund``).
* states ``CREATED | DOING | DONE | REVOKED | EXPIRED``; ``state_description`` ``USER_CONFIRM`` |
  ``MCH_COMPLETE`` with ``DOING``; ``collection.state`` ``USER_PAYING | USER_PAID``.
* notifications ``PAYSCORE.USER_CONFIRM`` / ``PAYSCORE.USER_PAID``: the payment envelope (same signature,
  serial, time window and AES-GCM resource), the plaintext is the order object.

Amounts are integer fen. Times are ``yyyyMMddHHmmss`` in Beijing time.
"""

from __future__ import annotations

import enum
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from wechatpayv3 import SignType

from core.errors import ChannelNotConfigured, ValidationFailed
from payments.gateways.trust import Check, CheckTable, Message, gateway_check

CST = timezone(timedelta(hours=8))
RISK_FUND_NAME = "ESTIMATE_ORDER_COST"  # deposit free, the estimated cost (PROTOCOLS F.3 risk_fund.name)
NOTIFY_EVENTS = frozenset({"PAYSCORE.USER_CONFIRM", "PAYSCORE.USER_PAID"})


class ServiceOrderState(enum.StrEnum):
    """Our reading of WeChat's (state, state_description, collection.state)."""

    CREATED = "created"  # CREATED: waiting for the user to confirm
    CONFIRMED = "confirmed"  # DOING / USER_CONFIRM
    COLLECTING = "collecting"  # DOING / MCH_COMPLETE, collection USER_PAYING: WeChat keeps debiting
    PAID = "paid"  # DONE, collection USER_PAID
    REVOKED = "revoked"  # REVOKED: cancelled by us
    EXPIRED = "expired"  # EXPIRED: never confirmed (30 days)


@dataclass(frozen=True)
class ServiceOrderRequest:
    out_order_no: str  # <= 32, [0-9A-Za-z_-|*]
    service_introduction: str  # <= 20 characters
    risk_fund_fen: int  # the most the order can be completed for (deposit free: total_amount <= this)
    start_time: datetime  # the service's start (timezone-aware)
    notify_url: str
    attach: str = ""


@dataclass(frozen=True)
class ServiceOrderStatus:
    """What WeChat says about one service order; checked by ``PAYSCORE_CHECKS`` before anything changes."""

    out_order_no: str
    state: ServiceOrderState
    gateway: str = "wechat"
    source: str = "query"  # trust.Message
    gateway_state: str = ""  # "DOING/MCH_COMPLETE", "DONE", ...
    service_id: str | None = None
    app_id: str | None = None
    merchant_id: str | None = None
    total_fen: int | None = None  # total_amount (after completion)
    paid_fen: int | None = None  # collection.paid_amount
    risk_fund_fen: int | None = None
    order_id: str | None = None  # WeChat's service order id
    transaction_id: str | None = None  # the debit's transaction (collection.details[-1])
    paid_at: datetime | None = None
    openid: str | None = None
    package: str | None = None  # create answer only: for the mini-program's confirmation
    raw: dict[str, Any] = field(default_factory=dict)


_SIGNED = frozenset({Message.NOTIFY, Message.QUERY, Message.ANSWER})
# Which field of a service-order word is checked against what (the README's trust table, column
# ``wechat_payscore``). Sources: the order object of get-service-order.html and the notifications of
# confirm-notification.html / success-notification.html (PROTOCOLS F.3).
PAYSCORE_CHECKS = CheckTable(
    gateway="wechat_payscore",
    trade=(
        Check(
            "out_order_no",
            "out_order_no",
            "the service order we asked about (a notification: the one it names)",
            frozenset(Message),
        ),
        gateway_check(),
        Check("service_id", "service_id", "WECHAT_PAYSCORE_SERVICE_ID", _SIGNED),
        Check("app_id", "appid", "WECHAT_APPID", _SIGNED),
        Check("merchant_id", "mchid", "WECHAT_PAY_MCHID", _SIGNED),
        Check("risk_fund_fen", "risk_fund.amount", "the service order's risk_fund_fen"),
        Check("total_fen", "total_amount", "the amount we completed the order with (absent before)"),
        Check("paid_fen", "collection.paid_amount", "the completed amount, or 0 before payment"),
    ),
    refund=(),
)


def service_order_from(data: Mapping[str, Any], *, source: Message = Message.QUERY) -> ServiceOrderStatus:
    """An order object (query / create / complete answer, or a decrypted ``PAYSCORE.*`` resource)."""
    state, description = str(data.get("state", "")), str(data.get("state_description") or "")
    collection = data.get("collection") if isinstance(data.get("collection"), dict) else {}
    no = data.get("out_order_no")
    if not isinstance(no, str) or not no:
        raise ValueError("service order without out_order_no")
    ours = _state(state, description, str(collection.get("state") or ""))
    details = collection.get("details") if isinstance(collection.get("details"), list) else []
    last = details[-1] if details and isinstance(details[-1], dict) else {}
    risk = data.get("risk_fund") if isinstance(data.get("risk_fund"), dict) else {}
    return ServiceOrderStatus(
        out_order_no=no,
        state=ours,
        source=source,
        gateway_state=f"{state}/{description}" if description else state,
        service_id=data.get("service_id"),
        app_id=data.get("appid"),
        merchant_id=data.get("mchid"),
        total_fen=_int(data.get("total_amount")),
        paid_fen=_int(collection.get("paid_amount")),
        risk_fund_fen=_int(risk.get("amount")),
        order_id=data.get("order_id"),
        transaction_id=last.get("transaction_id"),
        paid_at=_cst_time(last.get("paid_time")),
        openid=data.get("openid"),
        package=data.get("package"),
        raw=dict(data),
    )


def _state(state: str, description: str, collection: str) -> ServiceOrderState:
    if state == "CREATED":
        return ServiceOrderState.CREATED
    if state == "DOING" and (description == "MCH_COMPLETE" or collection == "USER_PAYING"):
        return ServiceOrderState.COLLECTING
    if state == "DOING":
        return ServiceOrderState.CONFIRMED
    if state == "DONE":
        return ServiceOrderState.PAID
    if state == "REVOKED":
        return ServiceOrderState.REVOKED
    if state == "EXPIRED":
        return ServiceOrderState.EXPIRED
    raise ValueError(f"unexpected service order state {state!r}")


def _int(value: Any) -> int | None:
    return value if type(value) is int else None


def _cst_time(value: Any) -> datetime | None:
    if not isinstance(value, str) or len(value) != 14 or not value.isdigit():
        return None
    return datetime.strptime(value, "%Y%m%d%H%M%S").replace(tzinfo=CST)


def payscore_time(moment: datetime) -> str:
    """``yyyyMMddHHmmss`` in Beijing time (PROTOCOLS F.3)."""
    if moment.tzinfo is None:
        raise ValidationFailed("Pay Score times must be timezone-aware.")
    return moment.astimezone(CST).strftime("%Y%m%d%H%M%S")


class PayScoreCalls:
    """Pay Score calls of ``WeChatGateway`` (uses its ``config``, ``client``, ``_call``, ``_request``)."""

    payscore_checks = PAYSCORE_CHECKS

    def payscore_service_id(self) -> str:
        service_id = self.config.payscore_service_id  # type: ignore[attr-defined]
        if not service_id:
            raise ChannelNotConfigured(
                "WeChat Pay Score is not configured: WECHAT_PAYSCORE_SERVICE_ID is empty.",
                details={"gateway": "wechat", "missing": ["WECHAT_PAYSCORE_SERVICE_ID"]},
            )
        return service_id

    def payscore_create(self, request: ServiceOrderRequest) -> ServiceOrderStatus:
        """Create a service order that needs the user's confirmation. Raises ``ValidationFailed`` (nothing
        sent), ``GatewayRejected``, ``GatewayUnavailable`` (retry with the same out_order_no: idempotent)."""
        if type(request.risk_fund_fen) is not int or request.risk_fund_fen <= 0:
            raise ValidationFailed("risk_fund_fen must be a positive int")
        kwargs = {
            "out_order_no": request.out_order_no,
            "service_id": self.payscore_service_id(),
            "service_introduction": request.service_introduction[:20],
            "time_range": {"start_time": payscore_time(request.start_time)},
            "risk_fund": {"name": RISK_FUND_NAME, "amount": request.risk_fund_fen},
            "attach": request.attach or None,
            "need_user_confirm": True,
            "notify_url": request.notify_url or self.config.notify_url,  # type: ignore[attr-defined]
        }
        _, answer = self._request(lambda c: c.payscore_create(**kwargs))  # type: ignore[attr-defined]
        return self._service_order(answer, Message.ANSWER)

    def payscore_confirm_params(self, *, package: str) -> dict[str, str]:
        """``extraData`` for ``wx.openBusinessView({businessType: 'wxpayScoreUse'})`` (PROTOCOLS F.3)."""
        params = {
            "mch_id": self.config.mchid,  # type: ignore[attr-defined]
            "package": package,
            "timestamp": str(int(self._clock())),  # type: ignore[attr-defined]
            "nonce_str": uuid.uuid4().hex,
            "sign_type": "HMAC-SHA256",
        }
        client = self.client()  # type: ignore[attr-defined]
        params["sign"] = self._call(lambda: client.sign(params, sign_type=SignType.HMAC_SHA256))  # type: ignore[attr-defined]
        return params

    def payscore_query(self, out_order_no: str) -> ServiceOrderStatus:
        """Raises ``TradeNotFound`` (``ORDER_NOT_EXIST``) when WeChat has no such order."""
        service_id = self.payscore_service_id()
        _, answer = self._request(  # type: ignore[attr-defined]
            lambda c: c.payscore_query(service_id=service_id, out_order_no=out_order_no)
        )
        return self._service_order(answer, Message.QUERY)

    def payscore_cancel(self, out_order_no: str, *, reason: str) -> None:
        """Cancel (-> ``REVOKED``). ``GatewayRejected`` when WeChat refuses (e.g. already paid)."""
        service_id = self.payscore_service_id()
        self._request(  # type: ignore[attr-defined]
            lambda c: c.payscore_cancel(out_order_no=out_order_no, service_id=service_id, reason=reason[:50])
        )

    def payscore_complete(
        self, out_order_no: str, *, total_fen: int, items: list[tuple[str, int]], end_time: datetime
    ) -> ServiceOrderStatus:
        """Complete with the final amount: ``items`` are ``(name <= 20, amount_fen)`` post_payments whose sum
        is ``total_fen``. WeChat then collects (``PAYSCORE.USER_PAID``). Repeating the same completion is
        harmless (the sandbox answers it again)."""
        if type(total_fen) is not int or total_fen < 0 or sum(a for _, a in items) != total_fen:
            raise ValidationFailed("total_fen must be a non-negative int, the sum of the items")
        service_id = self.payscore_service_id()
        kwargs = {
            "out_order_no": out_order_no,
            "service_id": service_id,
            "post_payments": [{"name": name[:20], "amount": amount, "count": 1} for name, amount in items],
            "total_amount": total_fen,
            "time_range": {"end_time": payscore_time(end_time)},
        }
        _, answer = self._request(lambda c: c.payscore_complete(**kwargs))  # type: ignore[attr-defined]
        return self._service_order(answer, Message.ANSWER)

    def _service_order(self, answer: Mapping[str, Any], source: Message) -> ServiceOrderStatus:
        from payments.gateways.wechat import _parsed

        return _parsed(lambda a: service_order_from(a, source=source), answer)


def is_payscore_event(event_type: str) -> bool:
    return event_type in NOTIFY_EVENTS


def payscore_expectations(
    *, out_order_no: str, risk_fund_fen: int, total_fen: int | None, service_id: str, identity: Any
) -> dict[str, frozenset]:
    """What each field of a service-order word must be, for our order ``out_order_no`` (``total_fen``:
    what we completed it with, None before completion: a total then is refused)."""
    total = frozenset() if total_fen is None else frozenset({total_fen})
    return {
        "out_order_no": frozenset({out_order_no}),
        "gateway": frozenset({"wechat"}),
        "service_id": frozenset({service_id}),
        "app_id": frozenset({identity.app_id}),
        "merchant_id": frozenset({identity.merchant_id}),
        "risk_fund_fen": frozenset({risk_fund_fen}),
        "total_fen": total,
        "paid_fen": total | {0},
    }
