# ruff: noqa: RUF001  (Chinese protocol text uses full-width punctuation)
"""Fake Wallyt / SwiftPass unified gateway (`POST /wallyt/pay/gateway`, flat XML, MD5/SHA256/RSA_1_256 signing).

The answer and the notifications are signed the way the request was (its `sign_type`); RSA_1_256 requests
are verified with the merchant public key and answered with the platform private key (PROTOCOLS F.6).
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import re
import secrets
import time
from typing import TYPE_CHECKING, Any
from xml.etree.ElementTree import ParseError

import defusedxml.ElementTree as DET
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from defusedxml import DefusedXmlException

from . import bills
from . import wechat_crypto as wc
from .faults import Fault, mutated
from .server import Request, Response
from .state import Refund, Trade, now_cst

if TYPE_CHECKING:
    from .server import Sandbox

SERVICES = {
    "pay.weixin.jspay": "wallyt.pay",
    "unified.trade.query": "wallyt.query",
    "unified.trade.close": "wallyt.close",
    "unified.trade.refund": "wallyt.refund",
    "unified.trade.refundquery": "wallyt.refund_query",
}
REFUND_STATUS = {"PROCESSING": "PROCESSING", "SUCCESS": "SUCCESS", "ABNORMAL": "CHANGE", "CLOSED": "FAIL"}
OUT_TRADE_NO_RE = re.compile(r"^[0-9A-Za-z_\-|*@]{1,32}$")


class CommError(Exception):
    """status != "0": communication-level failure, answered unsigned with a message."""

    def __init__(self, status: str, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


class BizError(Exception):
    def __init__(self, err_code: str, err_msg: str) -> None:
        super().__init__(err_msg)
        self.err_code, self.err_msg = err_code, err_msg


SIGN_TYPES = ("MD5", "SHA256", "RSA_1_256")


def _string_to_sign(params: dict[str, str]) -> str:
    return "&".join(f"{k}={params[k]}" for k in sorted(params) if k != "sign" and params[k] not in ("", None))


def sign_params(params: dict[str, str], key: str, sign_type: str = "MD5") -> str:
    """PROTOCOLS C.3: sorted non-empty params except sign, `&key=`, MD5 (or SHA256) upper hex."""
    text = _string_to_sign(params) + f"&key={key}"
    digest = hashlib.sha256 if sign_type.upper() == "SHA256" else hashlib.md5
    return digest(text.encode("utf-8")).hexdigest().upper()


def rsa_sign_params(params: dict[str, str], private_key: rsa.RSAPrivateKey) -> str:
    """PROTOCOLS F.6 RSA_1_256: the same sorted string without `&key=`, SHA256withRSA, base64."""
    return base64.b64encode(
        private_key.sign(_string_to_sign(params).encode(), padding.PKCS1v15(), hashes.SHA256())
    ).decode()


def rsa_verify_params(params: dict[str, str], public_key: rsa.RSAPublicKey) -> bool:
    try:
        public_key.verify(
            base64.b64decode(params.get("sign", "")),
            _string_to_sign(params).encode(),
            padding.PKCS1v15(),
            hashes.SHA256(),
        )
    except (InvalidSignature, ValueError):
        return False
    return True


def to_xml(params: dict[str, str]) -> bytes:
    parts = ["<xml>"]
    for k, v in params.items():
        if v in ("", None):
            continue
        safe = str(v).replace("]]>", "]]]]><![CDATA[>")
        parts.append(f"<{k}><![CDATA[{safe}]]></{k}>")
    parts.append("</xml>")
    return "".join(parts).encode("utf-8")


def parse_xml(body: bytes) -> dict[str, str]:
    """Flat <xml><k>v</k></xml> (CDATA or not); DTDs and entities are refused."""
    try:
        root = DET.fromstring(body, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except (ParseError, DefusedXmlException, ValueError) as exc:
        raise CommError("400", f"XML格式错误: {type(exc).__name__}") from None
    if root.tag != "xml":
        raise CommError("400", "XML格式错误: 根节点必须是 <xml>")
    out: dict[str, str] = {}
    for child in root:
        if len(child):
            raise CommError("400", f"XML格式错误: 字段 {child.tag} 不能嵌套")
        out[child.tag] = (child.text or "").strip()
    return out


def time_end(value: Any) -> str:
    return value.strftime("%Y%m%d%H%M%S") if value else ""


class WallytGateway:
    name = "wallyt"

    def __init__(self, sb: Sandbox) -> None:
        self.sb = sb
        self.mch_id = sb.keys.credentials["wallyt"]["mch_id"]
        self.key = sb.keys.wallyt_key
        sb.notifier.register(
            "wallyt", self._build_notification, lambda status, body: status == 200 and body.strip() == b"success"
        )
        sb.router.add("POST", r"/wallyt/pay/gateway", self.gateway)
        sb.router.add("POST", r"/wallyt/download/gateway", self.bill)  # SwiftPass's separate bill host

    # ================================================================ plumbing
    def sign(self, params: dict[str, str], sign_type: str) -> str:
        """The platform's signature: MD5/SHA256 with the shared key, RSA_1_256 with the platform key."""
        if sign_type.upper() == "RSA_1_256":
            return rsa_sign_params(params, self.sb.keys.wallyt_platform_private_key)
        return sign_params(params, self.key, sign_type)

    def _verified(self, params: dict[str, str], sign_type: str) -> bool:
        if sign_type.upper() == "RSA_1_256":
            return rsa_verify_params(params, self.sb.keys.wallyt_merchant_public_key)
        return bool(params.get("sign")) and params["sign"].upper() == sign_params(params, self.key, sign_type)

    def _reply(
        self, params: dict[str, str], sign_type: str, *, corrupt: bool = False, mutation: Fault | None = None
    ) -> Response:
        out = {"version": "2.0", "charset": "UTF-8", "sign_type": sign_type, "status": "0", **params}
        out.setdefault("mch_id", self.mch_id)
        out["nonce_str"] = secrets.token_hex(16)
        out = mutated(out, mutation)  # after the defaults, so that a test can change or drop any of them
        out["sign"] = self.sign(out, out.get("sign_type") or sign_type)
        if corrupt:
            out["sign"] = ("0" if out["sign"][0] != "0" else "1") + out["sign"][1:]
        return Response(body=to_xml(out), content_type="text/xml; charset=utf-8")

    def _comm_error(self, err: CommError) -> Response:
        return Response(
            body=to_xml({"version": "2.0", "charset": "UTF-8", "status": err.status, "message": err.message}),
            content_type="text/xml; charset=utf-8",
        )

    def gateway(self, req: Request) -> Response:
        try:
            params = parse_xml(req.body)
            service = params.get("service", "")
            if service not in SERVICES:
                raise CommError("400", f"不支持的接口类型: {service or '(empty)'}")
            if params.get("mch_id") != self.mch_id:
                raise CommError("400", "商户号不存在或未开通此服务")
            sign_type = params.get("sign_type") or "MD5"
            if sign_type.upper() not in SIGN_TYPES:
                raise CommError("400", f"不支持的签名类型: {sign_type}")
            if not params.get("nonce_str"):
                raise CommError("400", "缺少参数 nonce_str")
            if not self._verified(params, sign_type):
                raise CommError("400", "验证签名失败")
        except CommError as err:
            return self._comm_error(err)
        fault = self.sb.api_fault(SERVICES[service])
        handler = {
            "pay.weixin.jspay": self._jspay,
            "unified.trade.query": self._query,
            "unified.trade.close": self._close,
            "unified.trade.refund": self._refund,
            "unified.trade.refundquery": self._refund_query,
        }[service]

        def run() -> dict[str, str]:
            try:
                with self.sb.store.lock:
                    return {"result_code": "0", **handler(req, params)}
            except BizError as err:
                return {"result_code": "1", "err_code": err.err_code, "err_msg": err.err_msg}

        if fault and fault.kind == "timeout":
            if fault.apply:
                run()
            return self.sb.timeout_response(fault)
        if fault and fault.kind == "http_500":
            return Response.text("500 Internal Server Error", 500)
        if fault and fault.kind == "malformed":
            return Response(body=b"<xml><status><![CDATA[0]]></status><result_co", content_type="text/xml")
        mutation = self.sb.message_fault(SERVICES[service])
        return self._reply(run(), sign_type, corrupt=bool(fault and fault.kind == "bad_signature"), mutation=mutation)

    @staticmethod
    def _fen(params: dict[str, str], key: str) -> int:
        value = params.get(key, "")
        if not value.isdigit() or int(value) <= 0:
            raise BizError("PARAM_ERROR", f"{key} 必须为大于0的整数（单位：分）")
        return int(value)

    def _find(self, params: dict[str, str]) -> Trade:
        if not params.get("out_trade_no") and not params.get("transaction_id"):
            raise BizError("PARAM_ERROR", "out_trade_no 与 transaction_id 必填其一")
        t = self.sb.store.trade("wallyt", params.get("out_trade_no"), params.get("transaction_id"))
        if t is None:
            raise BizError("ORDERNOTEXIST", "订单不存在")
        return t

    # ================================================================ services
    def _jspay(self, req: Request, p: dict[str, str]) -> dict[str, str]:
        for key in ("out_trade_no", "body", "total_fee", "mch_create_ip", "notify_url"):
            if not p.get(key):
                raise BizError("PARAM_ERROR", f"缺少必填参数 {key}")
        if not OUT_TRADE_NO_RE.match(p["out_trade_no"]):
            raise BizError("PARAM_ERROR", "out_trade_no 格式错误")
        total = self._fen(p, "total_fee")
        for key in ("time_start", "time_expire"):
            if p.get(key) and not re.fullmatch(r"\d{14}", p[key]):
                raise BizError("PARAM_ERROR", f"{key} 格式应为 yyyyMMddHHmmss")
        if p.get("is_raw") == "1" and (not p.get("sub_openid") or not p.get("sub_appid")):
            raise BizError("PARAM_ERROR", "原生JS支付（is_raw=1）必须传 sub_appid 与 sub_openid")
        canonical = {"total": total, "body": p["body"], "sub_openid": p.get("sub_openid", "")}
        store = self.sb.store
        t = store.trade("wallyt", p["out_trade_no"])
        if t is not None:
            if t.state == "SUCCESS":
                raise BizError("ORDERPAID", "订单已支付")
            if t.state == "CLOSED":
                raise BizError("ORDERCLOSED", "订单已关闭")
            if t.request != canonical:
                raise BizError("OUT_TRADE_NO_USED", "商户订单号重复")
        else:
            t = Trade(
                gateway="wallyt",
                out_trade_no=p["out_trade_no"],
                transaction_id=store.next_id("7551", 30),
                amount=total,
                trade_type="pay.weixin.jspay",
                description=p["body"],
                notify_url=p["notify_url"],
                appid=p.get("sub_appid", ""),
                mchid=self.mch_id,
                attach=p.get("attach", ""),
                openid=p.get("sub_openid", ""),
                return_url=p.get("callback_url", ""),
                request=canonical,
            )
            t.extra["token_id"] = secrets.token_hex(16)
            t.extra["sign_type"] = (p.get("sign_type") or "MD5").upper()
            t.extra["prepay_id"] = "wx" + now_cst().strftime("%d%H%M%S") + secrets.token_hex(13)
            t.extra["out_transaction_id"] = store.next_id("42000", 28)
            store.add_trade(t)
        out = {"token_id": t.extra["token_id"]}
        if p.get("is_raw") == "1":
            ts, nonce = str(int(time.time())), secrets.token_hex(16)
            package = f"prepay_id={t.extra['prepay_id']}"
            msg = f"{t.appid}\n{ts}\n{nonce}\n{package}\n".encode()
            pay_info = {
                "appId": t.appid,
                "timeStamp": ts,
                "nonceStr": nonce,
                "package": package,
                "signType": "RSA",
                "paySign": wc.rsa_sign(self.sb.keys.merchant_private_key, msg),
                "status": "0",
            }
            out["pay_info"] = json.dumps(pay_info, separators=(",", ":"))
        out["pay_url"] = f"{req.base_url}/cashier/wallyt/{t.out_trade_no}?token_id={t.extra['token_id']}"
        return out

    def trade_state(self, t: Trade) -> str:
        return self.sb.store.derived_state(t)

    def _query(self, req: Request, p: dict[str, str]) -> dict[str, str]:
        t = self._find(p)
        out = {
            "trade_state": self.trade_state(t),
            "out_trade_no": t.out_trade_no,
            "transaction_id": t.transaction_id,
            "total_fee": str(t.amount),
            "fee_type": "CNY",
            "attach": t.attach,
            "trade_type": t.trade_type,
        }
        if t.success_time:
            out.update(
                {
                    "out_transaction_id": t.extra["out_transaction_id"],
                    "time_end": time_end(t.success_time),
                    "bank_type": t.extra.get("bank_type", "CFT"),
                    "openid": t.extra.get("openid", ""),
                    "sub_openid": t.openid,
                    "sub_appid": t.appid,
                    "is_subscribe": "N",
                    "pay_result": "0",
                }
            )
        return out

    def _close(self, req: Request, p: dict[str, str]) -> dict[str, str]:
        t = self._find(p)
        if t.state == "SUCCESS":
            raise BizError("ORDERPAID", "订单已支付，不能关闭")
        t.state = "CLOSED"
        t.closed_at = now_cst()
        self.sb.store.save_trade(t)
        return {}

    def _refund(self, req: Request, p: dict[str, str]) -> dict[str, str]:
        out_refund_no = p.get("out_refund_no", "")
        if not out_refund_no or not OUT_TRADE_NO_RE.match(out_refund_no):
            raise BizError("PARAM_ERROR", "out_refund_no 必填")
        total, fee = self._fen(p, "total_fee"), self._fen(p, "refund_fee")
        t = self._find(p)
        store = self.sb.store
        r = store.refunds.get(("wallyt", out_refund_no))
        if r is not None:
            if r.amount != fee or r.out_trade_no != t.out_trade_no:
                raise BizError("INVALID_REQUEST", "退款单号重复且参数不一致")
        else:
            if t.state != "SUCCESS":
                raise BizError("TRADE_STATE_ERROR", "订单状态错误，未支付的订单不能退款")
            if total != t.amount:
                raise BizError("INVALID_REQUEST", "total_fee 与订单金额不一致")
            if store.refunded_total(t) + fee > t.amount:
                raise BizError("REFUND_FEE_INVALID", "累计退款金额大于订单金额")
            r = Refund(
                gateway="wallyt",
                out_refund_no=out_refund_no,
                refund_id=store.next_id("7551", 30),
                out_trade_no=t.out_trade_no,
                transaction_id=t.transaction_id,
                amount=fee,
                total=t.amount,
            )
            store.add_refund(r)
            self.sb.schedule_refund_settle("wallyt", out_refund_no)
        return {
            "transaction_id": t.transaction_id,
            "out_trade_no": t.out_trade_no,
            "out_refund_no": r.out_refund_no,
            "refund_id": r.refund_id,
            "refund_channel": "ORIGINAL",
            "refund_fee": str(r.amount),
            "coupon_refund_fee": "0",
        }

    def _refund_query(self, req: Request, p: dict[str, str]) -> dict[str, str]:
        store = self.sb.store
        refunds: list[Refund]
        if p.get("out_refund_no") or p.get("refund_id"):
            refunds = [
                r
                for r in store.refunds.values()
                if r.gateway == "wallyt"
                and (r.out_refund_no == p.get("out_refund_no") or r.refund_id == p.get("refund_id"))
            ]
            if not refunds:
                raise BizError("REFUNDNOTEXIST", "退款单不存在")
            t = store.trade("wallyt", refunds[0].out_trade_no)
            assert t is not None
        else:
            t = self._find(p)
            refunds = sorted(store.refunds_of(t), key=lambda r: r.created_at)
            if not refunds:
                raise BizError("REFUNDNOTEXIST", "退款单不存在")
        out = {"transaction_id": t.transaction_id, "out_trade_no": t.out_trade_no, "refund_count": str(len(refunds))}
        for i, r in enumerate(refunds):
            out.update(
                {
                    f"out_refund_no_{i}": r.out_refund_no,
                    f"refund_id_{i}": r.refund_id,
                    f"refund_channel_{i}": "ORIGINAL",
                    f"refund_fee_{i}": str(r.amount),
                    f"coupon_refund_fee_{i}": "0",
                    f"refund_time_{i}": time_end(r.success_time or r.created_at),
                    f"refund_status_{i}": REFUND_STATUS[r.status],
                }
            )
        return out

    # ================================================================ state changes (cashier/control)
    def complete(
        self,
        out_trade_no: str,
        *,
        success_time: str | None = None,
        openid: str | None = None,
        bank_type: str | None = None,
    ) -> Trade:
        with self.sb.store.lock:
            t = self.sb.store.mark_paid("wallyt", out_trade_no, success_time)
            if openid:
                t.openid = openid
            t.extra["openid"] = "oywgt" + secrets.token_urlsafe(18)[:23]
            t.extra["bank_type"] = bank_type or "CFT"
            self.sb.store.save_trade(t)
        self.notify_trade(t)
        return t

    def notify_trade(self, t: Trade) -> None:
        """Send (again) the pay_result notification of a paid trade."""
        with self.sb.store.lock:
            if t.success_time is None:
                raise ValueError(f"transaction {t.out_trade_no} is not paid")
            params = mutated(self.notify_params(t), self.sb.message_fault("wallyt.notify"))
        if t.notify_url:
            self.sb.notifier.submit(
                gateway="wallyt",
                event="pay_result",
                url=t.notify_url,
                ref={"out_trade_no": t.out_trade_no},
                spec={"params": params, "sign_type": t.extra.get("sign_type", "MD5")},
            )

    def _build_notification(self, spec: dict[str, Any], bad: bool) -> tuple[dict[str, str], bytes]:
        signed = dict(spec["params"], nonce_str=secrets.token_hex(16))
        signed["sign"] = self.sign(signed, signed.get("sign_type") or spec.get("sign_type", "MD5"))
        if bad:
            signed["sign"] = ("0" if signed["sign"][0] != "0" else "1") + signed["sign"][1:]
        return {"Content-Type": "text/xml; charset=utf-8"}, to_xml(signed)

    def notify_refund(self, r: Refund) -> None:
        raise ValueError("the sandbox's Wallyt sends no refund notifications (reconciliation queries them)")

    def notify_params(self, t: Trade) -> dict[str, str]:
        return {
            "version": "2.0",
            "charset": "UTF-8",
            "sign_type": t.extra.get("sign_type", "MD5"),
            "status": "0",
            "result_code": "0",
            "mch_id": self.mch_id,
            "openid": t.extra.get("openid", ""),
            "trade_type": t.trade_type,
            "is_subscribe": "N",
            "pay_result": "0",
            "transaction_id": t.transaction_id,
            "out_transaction_id": t.extra.get("out_transaction_id", ""),
            "sub_is_subscribe": "N",
            "sub_appid": t.appid,
            "sub_openid": t.openid,
            "out_trade_no": t.out_trade_no,
            "total_fee": str(t.amount),
            "cash_fee": str(t.amount),
            "fee_type": "CNY",
            "attach": t.attach,
            "bank_type": t.extra.get("bank_type", "CFT"),
            "bank_billno": t.extra.get("out_transaction_id", ""),
            "time_end": time_end(t.success_time),
        }

    def expire(self, out_trade_no: str) -> Trade:
        """The gateway closes an unpaid trade itself (time_expire passed); no notification."""
        return self.sb.store.close_unpaid("wallyt", out_trade_no)

    def fail(self, out_trade_no: str) -> Trade:
        return self.sb.store.fail_unpaid("wallyt", out_trade_no)

    def settle_refund(
        self, out_refund_no: str, status: str, *, success_time: str | None = None, only_processing: bool = False
    ) -> Refund | None:
        return self.sb.store.settle_refund(
            "wallyt", out_refund_no, status, success_time=success_time, only_processing=only_processing
        )

    # ================================================================ cashier hooks
    def describe(self, t: Trade) -> dict[str, Any]:
        return {"trade_state": self.trade_state(t), "transaction_id": t.transaction_id, "total_fee": t.amount}

    def cashier_qr(self, t: Trade) -> str | None:
        return None

    def return_location(self, t: Trade, redirect: str) -> str | None:
        return redirect or t.return_url or None

    # ================================================================ daily bill (pay.bill.merchant)
    def bill(self, req: Request) -> Response:
        """``pay.bill.merchant``: a signed XML request (version 1.0, bill_date yyyyMMdd, bill_type
        ALL/SUCCESS/REFUND) answered with the day's CSV text; errors in the XML reply format. The bill of
        today or a later day (Asia/Shanghai) is not published yet: status 400 (``bills.published``)."""
        try:
            p = parse_xml(req.body)
            if p.get("service") != "pay.bill.merchant":
                raise CommError("400", f"不支持的接口类型: {p.get('service') or '(empty)'}")
            if p.get("mch_id") != self.mch_id:
                raise CommError("400", "商户号不存在或未开通此服务")
            if not self._verified(p, p.get("sign_type") or "MD5"):
                raise CommError("400", "验证签名失败")
            if not re.fullmatch(r"\d{8}", p.get("bill_date", "")):
                raise CommError("400", "bill_date 格式应为 yyyyMMdd")
            day = dt.datetime.strptime(p["bill_date"], "%Y%m%d").date()
            if not bills.published(day):  # today's or a later day's bill is not out yet
                raise CommError("400", "账单未生成：只能下载今天以前的账单")
            if p.get("bill_type", "ALL") not in ("ALL", "SUCCESS", "REFUND"):
                raise CommError("400", "bill_type 只能是 ALL、SUCCESS、REFUND")
        except (CommError, ValueError) as err:
            return self._comm_error(err if isinstance(err, CommError) else CommError("400", "bill_date 无效"))
        fault = self.sb.api_fault("wallyt.bill")
        if fault and fault.kind == "timeout":
            return self.sb.timeout_response(fault)
        if fault and fault.kind == "http_500":
            return Response.text("500 Internal Server Error", 500)
        with self.sb.store.lock:
            trades, refunds = self.sb.store.gateway_records("wallyt")
            text = bills.wallyt_bill(
                trades,
                refunds,
                day,
                p.get("bill_type", "ALL"),
                self.mch_id,
                self.sb.store.bill_adjust.get("wallyt"),
            )
        body = text.encode("utf-8")
        if fault and fault.kind == "malformed":
            body = body[: len(body) // 2]
        return Response(body=body, content_type="text/plain; charset=utf-8")
