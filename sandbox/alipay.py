# ruff: noqa: RUF001  (Chinese protocol text uses full-width punctuation)
"""Fake Alipay open platform gateway (`/alipay/gateway.do`), RSA2/RSA signatures."""

from __future__ import annotations

import base64
import datetime as dt
import json
import secrets
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlencode

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from . import bills, cashier
from .faults import mutated
from .server import Request, Response
from .state import CST, Refund, Trade, now_cst

if TYPE_CHECKING:
    from .server import Sandbox

PAGE_METHODS = {"alipay.trade.page.pay": "FAST_INSTANT_TRADE_PAY", "alipay.trade.wap.pay": "QUICK_WAP_WAY"}
API_METHODS = {
    "alipay.trade.query": "alipay.query",
    "alipay.trade.close": "alipay.close",
    "alipay.trade.refund": "alipay.refund",
    "alipay.trade.fastpay.refund.query": "alipay.refund_query",
    "alipay.data.dataservice.bill.downloadurl.query": "alipay.bill",
}
SUCCESS = {"code": "10000", "msg": "Success"}


class BizError(Exception):
    def __init__(self, sub_code: str, sub_msg: str, code: str = "40004", msg: str = "Business Failed") -> None:
        super().__init__(sub_msg)
        self.payload = {"code": code, "msg": msg, "sub_code": sub_code, "sub_msg": sub_msg}


class GatewayError(Exception):
    """Gateway-level failure. Without a known app (missing/invalid app_id) the answer carries no
    `sign` (the SDK raises AliPayException); otherwise it is signed like real Alipay does for e.g.
    `isv.invalid-signature`, so the SDK returns it and callers must check `code`."""

    def __init__(self, code: str, msg: str, sub_code: str, sub_msg: str, *, signed: bool = True) -> None:
        super().__init__(sub_msg)
        self.signed = signed
        self.payload = {"code": code, "msg": msg, "sub_code": sub_code, "sub_msg": sub_msg}


def fmt_time(value: dt.datetime | None) -> str:
    return value.astimezone(CST).strftime("%Y-%m-%d %H:%M:%S") if value else ""


def to_fen(value: Any, field: str) -> int:
    try:
        amount = Decimal(str(value))
    except (InvalidOperation, ValueError):
        raise BizError("ACQ.INVALID_PARAMETER", f"参数无效: {field}", "40002", "Invalid Arguments") from None
    if amount != amount.quantize(Decimal("0.01")) or amount < Decimal("0.01") or amount > Decimal("100000000"):
        raise BizError("ACQ.INVALID_PARAMETER", f"参数无效: {field}", "40002", "Invalid Arguments")
    return int(amount * 100)


def signing_string(params: dict[str, str], *, exclude: tuple[str, ...]) -> str:
    return "&".join(f"{k}={params[k]}" for k in sorted(params) if k not in exclude)


def rsa_sign(key: rsa.RSAPrivateKey, text: str, sign_type: str = "RSA2", *, charset: str = "utf-8") -> str:
    algo = hashes.SHA256() if sign_type == "RSA2" else hashes.SHA1()  # noqa: S303 - protocol "RSA" = SHA1
    return base64.b64encode(key.sign(text.encode(charset), padding.PKCS1v15(), algo)).decode()


def rsa_verify(key: rsa.RSAPublicKey, text: str, signature: str, sign_type: str = "RSA2") -> bool:
    algo = hashes.SHA256() if sign_type == "RSA2" else hashes.SHA1()  # noqa: S303
    try:
        key.verify(base64.b64decode(signature), text.encode("utf-8"), padding.PKCS1v15(), algo)
    except (InvalidSignature, ValueError):
        return False
    return True


class AlipayGateway:
    name = "alipay"

    def __init__(self, sb: Sandbox) -> None:
        self.sb = sb
        self.app_id = sb.keys.credentials["alipay"]["app_id"]
        self.seller_id = sb.keys.credentials["alipay"]["seller_id"]
        # Alipay sends some notifies in GBK even when the request said UTF-8 (PROTOCOLS F.5); the control
        # API sets this to "gbk" to send them so (with a Chinese voucher name in voucher_detail_list).
        self.notify_charset = "utf-8"
        sb.notifier.register(
            "alipay", self._build_notification, lambda status, body: status == 200 and body == b"success"
        )
        sb.router.add("GET,POST", r"/alipay/gateway\.do", self.gateway)
        sb.router.add("GET", r"/alipay/bill/download", self.bill_download)

    # ================================================================ plumbing
    def _params(self, req: Request) -> dict[str, str]:
        params = {k: v[0] for k, v in parse_qs(req.query_string, keep_blank_values=True).items()}
        if req.method == "POST" and req.body:
            params.update(req.form())
        return params

    def _authenticate(self, params: dict[str, str]) -> None:
        if not params.get("app_id"):
            raise GatewayError(
                "40001", "Missing Required Arguments", "isv.missing-app-id", "缺少AppID参数", signed=False
            )
        if not params.get("method"):
            raise GatewayError(
                "40001", "Missing Required Arguments", "isv.missing-method", "缺少方法名参数", signed=False
            )
        if params["app_id"] != self.app_id:
            raise GatewayError("40002", "Invalid Arguments", "isv.invalid-app-id", "无效的AppID参数", signed=False)
        sign_type = params.get("sign_type") or "RSA"
        if sign_type not in ("RSA", "RSA2"):
            raise GatewayError("40002", "Invalid Arguments", "isv.invalid-signature-type", "无效的签名类型")
        if not params.get("sign"):
            raise GatewayError("40001", "Missing Required Arguments", "isv.missing-signature", "缺少签名参数")
        try:
            dt.datetime.strptime(params.get("timestamp", ""), "%Y-%m-%d %H:%M:%S")
        except ValueError:
            raise GatewayError("40002", "Invalid Arguments", "isv.invalid-timestamp", "非法的时间戳参数") from None
        key = self.sb.keys.alipay_app_public_key
        text = signing_string(params, exclude=("sign",))
        non_empty = {k: v for k, v in params.items() if v != ""}
        if not (
            rsa_verify(key, text, params["sign"], sign_type)
            or rsa_verify(key, signing_string(non_empty, exclude=("sign",)), params["sign"], sign_type)
        ):
            raise GatewayError(
                "40002",
                "Invalid Arguments",
                "isv.invalid-signature",
                "验签出错，建议检查签名字符串或签名私钥与应用公钥是否匹配，网关生成的验签字符串为："
                + text.replace("&", "&amp;"),
            )

    def _answer(
        self,
        method: str,
        inner: dict[str, Any],
        *,
        signed: bool = True,
        corrupt: bool = False,
        status: int = 200,
        key_name: str | None = None,
    ) -> Response:
        name = key_name or method.replace(".", "_") + "_response"
        inner_json = json.dumps(inner, ensure_ascii=False, separators=(",", ":"))
        if signed:
            sign = rsa_sign(self.sb.keys.alipay_private_key, inner_json)
            if corrupt:
                sign = ("A" if sign[0] != "A" else "B") + sign[1:]
            body = f'{{"{name}":{inner_json},"sign":"{sign}"}}'
        else:
            body = f'{{"{name}":{inner_json}}}'
        return Response(status=status, body=body.encode("utf-8"), content_type="application/json;charset=utf-8")

    @staticmethod
    def _biz(params: dict[str, str]) -> dict[str, Any]:
        raw = params.get("biz_content") or "{}"
        try:
            biz = json.loads(raw)
        except ValueError:
            raise BizError(
                "isv.invalid-parameter", "biz_content 不是合法的JSON", "40002", "Invalid Arguments"
            ) from None
        if not isinstance(biz, dict):
            raise BizError("isv.invalid-parameter", "biz_content 不是JSON对象", "40002", "Invalid Arguments")
        return biz

    def _find(self, biz: dict[str, Any]) -> Trade:
        if not biz.get("out_trade_no") and not biz.get("trade_no"):
            raise BizError(
                "ACQ.INVALID_PARAMETER", "参数无效: out_trade_no 与 trade_no 不能同时为空", "40002", "Invalid Arguments"
            )
        t = self.sb.store.trade("alipay", biz.get("out_trade_no"), biz.get("trade_no"))
        if t is None:
            raise BizError("ACQ.TRADE_NOT_EXIST", "交易不存在")
        return t

    def trade_status(self, t: Trade) -> str:
        if t.state == "SUCCESS":
            refunded = self.sb.store.refunded_total(t, include_processing=False)
            return "TRADE_CLOSED" if refunded >= t.amount else "TRADE_SUCCESS"
        return "TRADE_CLOSED" if t.state == "CLOSED" else "WAIT_BUYER_PAY"

    # ================================================================ gateway
    def gateway(self, req: Request) -> Response:
        params = self._params(req)
        method = params.get("method", "")
        try:
            self._authenticate(params)
        except GatewayError as err:
            if method in PAGE_METHODS:
                return cashier.render_result(
                    "alipay", f"{err.payload['sub_code']}: {err.payload['sub_msg']}", None, status=400
                )
            name = method if method in API_METHODS else None
            return self._answer(
                name or "", err.payload, signed=err.signed and bool(name), key_name=None if name else "error_response"
            )
        if method in PAGE_METHODS:
            return self._page_pay(req, params, method)
        if method not in API_METHODS:
            return self._answer(
                "",
                {
                    "code": "40002",
                    "msg": "Invalid Arguments",
                    "sub_code": "isv.invalid-method",
                    "sub_msg": "不存在的方法名",
                },
                key_name="error_response",
            )
        target = API_METHODS[method]
        fault = self.sb.api_fault(target)
        handler = {
            "alipay.trade.query": self._query,
            "alipay.trade.close": self._close,
            "alipay.trade.refund": self._refund,
            "alipay.trade.fastpay.refund.query": self._refund_query,
            "alipay.data.dataservice.bill.downloadurl.query": self._bill,
        }[method]

        def run() -> dict[str, Any]:
            try:
                with self.sb.store.lock:
                    return {**SUCCESS, **handler(req, params, self._biz(params))}
            except BizError as err:
                return err.payload

        if fault and fault.kind == "timeout":
            if fault.apply:
                run()
            return self.sb.timeout_response(fault)
        if fault and fault.kind == "http_500":
            return self._answer(
                "",
                {
                    "code": "20000",
                    "msg": "Service Currently Unavailable",
                    "sub_code": "isp.unknow-error",
                    "sub_msg": "系统繁忙",
                },
                signed=False,
                status=500,
                key_name="error_response",
            )
        if fault and fault.kind == "malformed":
            return Response(body=b"<html><body>502 Bad Gateway \x00\xff", content_type="application/json;charset=utf-8")
        answer = mutated(run(), self.sb.message_fault(target))
        return self._answer(method, answer, corrupt=bool(fault and fault.kind == "bad_signature"))

    # ================================================================ methods
    def _page_pay(self, req: Request, params: dict[str, str], method: str) -> Response:
        fault = self.sb.api_fault("alipay.page_pay" if method.endswith("page.pay") else "alipay.wap_pay")
        if fault and fault.kind == "timeout":
            return self.sb.timeout_response(fault)
        if fault and fault.kind in ("http_500", "malformed"):
            return Response.html("<h1>系统繁忙，请稍后再试</h1>", 500 if fault.kind == "http_500" else 200)
        try:
            biz = self._biz(params)
            out_trade_no = str(biz.get("out_trade_no") or "")
            subject = str(biz.get("subject") or "")
            if not out_trade_no or len(out_trade_no) > 64 or not subject or len(subject) > 256:
                raise BizError(
                    "ACQ.INVALID_PARAMETER", "参数无效: out_trade_no / subject", "40002", "Invalid Arguments"
                )
            total = to_fen(biz.get("total_amount"), "total_amount")
            canonical = {"method": method, "total": total, "subject": subject}
            with self.sb.store.lock:
                t = self.sb.store.trade("alipay", out_trade_no)
                if t is not None:
                    if t.state == "SUCCESS":
                        raise BizError("ACQ.TRADE_HAS_SUCCESS", "交易已被支付")
                    if t.state == "CLOSED":
                        raise BizError("ACQ.TRADE_HAS_CLOSE", "交易已经关闭")
                    if t.request["total"] != total or t.request["subject"] != subject:
                        raise BizError("ACQ.CONTEXT_INCONSISTENT", "交易信息被篡改")
                    t.notify_url = params.get("notify_url") or t.notify_url
                    t.return_url = params.get("return_url") or t.return_url
                    self.sb.store.save_trade(t)
                else:
                    t = Trade(
                        gateway="alipay",
                        out_trade_no=out_trade_no,
                        transaction_id=self.sb.store.next_id("", 28),
                        amount=total,
                        trade_type=PAGE_METHODS[method],
                        description=subject,
                        notify_url=params.get("notify_url", ""),
                        return_url=params.get("return_url", ""),
                        appid=self.app_id,
                        attach=str(biz.get("passback_params") or ""),
                        request=canonical,
                    )
                    t.extra["method"] = method
                    t.extra["body"] = str(biz.get("body") or "")
                    self.sb.store.add_trade(t)
        except BizError as err:
            return cashier.render_result(
                "alipay", f"{err.payload['sub_code']}: {err.payload['sub_msg']}", None, status=400
            )
        return cashier.render_cashier("alipay", t, state_label="WAIT_BUYER_PAY")

    def _query(self, req: Request, params: dict[str, str], biz: dict[str, Any]) -> dict[str, Any]:
        t = self._find(biz)
        out: dict[str, Any] = {"trade_no": t.transaction_id, "out_trade_no": t.out_trade_no}
        paid = t.success_time is not None
        if paid:
            out["buyer_logon_id"] = t.extra.get("buyer_logon_id", "")
        out["trade_status"] = self.trade_status(t)
        out["total_amount"] = bills.yuan(t.amount)
        if paid:
            out.update(
                {
                    "buyer_pay_amount": bills.yuan(t.amount),
                    "point_amount": "0.00",
                    "invoice_amount": bills.yuan(t.amount),
                    "send_pay_date": fmt_time(t.success_time),
                    "receipt_amount": bills.yuan(t.amount),
                    "buyer_user_id": t.extra.get("buyer_id", ""),
                    "buyer_open_id": t.openid,
                    "fund_bill_list": [{"amount": bills.yuan(t.amount), "fund_channel": "ALIPAYACCOUNT"}],
                }
            )
        return out

    def _close(self, req: Request, params: dict[str, str], biz: dict[str, Any]) -> dict[str, Any]:
        t = self._find(biz)
        if t.state in ("SUCCESS", "CLOSED"):
            raise BizError("ACQ.TRADE_STATUS_ERROR", "交易状态不合法")
        t.state = "CLOSED"
        t.closed_at = now_cst()
        self.sb.store.save_trade(t)
        return {"trade_no": t.transaction_id, "out_trade_no": t.out_trade_no}

    def _refund(self, req: Request, params: dict[str, str], biz: dict[str, Any]) -> dict[str, Any]:
        fen = to_fen(biz.get("refund_amount"), "refund_amount")
        t = self._find(biz)
        out_request_no = str(biz.get("out_request_no") or t.out_trade_no)
        store = self.sb.store
        existing = store.refunds.get(("alipay", f"{t.out_trade_no}|{out_request_no}"))
        base = {
            "trade_no": t.transaction_id,
            "out_trade_no": t.out_trade_no,
            "buyer_logon_id": t.extra.get("buyer_logon_id", ""),
        }
        if existing is not None:
            if existing.amount != fen:
                raise BizError("ACQ.DISCORDANT_REPEAT_REQUEST", "请求信息不一致")
            return {
                **base,
                "fund_change": "N",
                "refund_fee": bills.yuan(store.refunded_total(t)),
                "gmt_refund_pay": fmt_time(existing.success_time),
                "buyer_user_id": t.extra.get("buyer_id", ""),
            }
        if t.state == "CLOSED" or (t.state == "SUCCESS" and self.trade_status(t) == "TRADE_CLOSED"):
            raise BizError("ACQ.TRADE_HAS_CLOSE", "交易已经关闭")
        if t.state != "SUCCESS":
            raise BizError("ACQ.TRADE_STATUS_ERROR", "交易状态不合法")
        if t.extra.get("finished"):
            raise BizError("ACQ.TRADE_HAS_FINISHED", "交易已完结")
        if store.refunded_total(t) + fen > t.amount:
            raise BizError("ACQ.REFUND_AMT_NOT_EQUAL_TOTAL", "退款金额超限")
        r = Refund(
            gateway="alipay",
            out_refund_no=out_request_no,
            refund_id=out_request_no,
            out_trade_no=t.out_trade_no,
            transaction_id=t.transaction_id,
            amount=fen,
            total=t.amount,
            status="SUCCESS",
            reason=str(biz.get("refund_reason") or ""),
            notify_url=t.notify_url,
            success_time=now_cst(),
        )
        store.add_refund(r, key=f"{t.out_trade_no}|{out_request_no}")
        self._send_notify(t, refund=r)
        return {
            **base,
            "fund_change": "Y",
            "refund_fee": bills.yuan(store.refunded_total(t)),
            "gmt_refund_pay": fmt_time(r.success_time),
            "buyer_user_id": t.extra.get("buyer_id", ""),
            "send_back_fee": bills.yuan(fen),
        }

    def _refund_query(self, req: Request, params: dict[str, str], biz: dict[str, Any]) -> dict[str, Any]:
        t = self._find(biz)
        out_request_no = str(biz.get("out_request_no") or "")
        if not out_request_no:
            raise BizError("ACQ.INVALID_PARAMETER", "参数无效: out_request_no", "40002", "Invalid Arguments")
        out: dict[str, Any] = {
            "trade_no": t.transaction_id,
            "out_trade_no": t.out_trade_no,
            "out_request_no": out_request_no,
        }
        r = self.sb.store.refunds.get(("alipay", f"{t.out_trade_no}|{out_request_no}"))
        if r is not None and r.status == "SUCCESS":
            out.update(
                {
                    "total_amount": bills.yuan(t.amount),
                    "refund_amount": bills.yuan(r.amount),
                    "refund_status": "REFUND_SUCCESS",
                    "gmt_refund_pay": fmt_time(r.success_time),
                }
            )
        return out

    def _bill(self, req: Request, params: dict[str, str], biz: dict[str, Any]) -> dict[str, Any]:
        if biz.get("bill_type") not in ("trade", "signcustomer"):
            raise BizError("isv.invalid-parameter", "参数无效: bill_type", "40002", "Invalid Arguments")
        try:
            day = dt.date.fromisoformat(str(biz.get("bill_date") or ""))
        except ValueError:
            raise BizError("isv.invalid-parameter", "参数无效: bill_date", "40002", "Invalid Arguments") from None
        if not bills.published(day):  # today's bill, like a future day's, is not out yet (T+1)
            raise BizError("isp.bill_not_exist", "账单不存在")
        trades, refunds = self.sb.store.gateway_records("alipay")
        data = bills.alipay_trade_bill(trades, refunds, day, self.seller_id, self.sb.store.bill_adjust.get("alipay"))
        if data is None:
            raise BizError("isp.bill_not_exist", "账单不存在")
        token = secrets.token_urlsafe(24)
        self.sb.store.put_blob(token, "application/zip", data)
        return {
            "bill_download_url": f"{req.base_url}/alipay/bill/download?token={token}&fileType=csv.zip"
            f"&bizDates={day:%Y%m%d}"
        }

    def bill_download(self, req: Request) -> Response:
        fault = self.sb.api_fault("alipay.bill_download")
        if fault and fault.kind == "timeout":
            return self.sb.timeout_response(fault)
        if fault and fault.kind == "http_500":
            return Response.text("system error", 500)
        blob = self.sb.store.get_blob(req.query.get("token", ""))
        if blob is None:
            return Response.text("file not found", 404)
        body = blob[1][: len(blob[1]) // 2] if fault and fault.kind == "malformed" else blob[1]
        return Response(
            body=body,
            content_type=blob[0],
            headers={"Content-Disposition": f'attachment; filename="bill_{req.query.get("bizDates", "")}.csv.zip"'},
        )

    # ================================================================ state changes (cashier/control)
    def complete(
        self,
        out_trade_no: str,
        *,
        success_time: str | None = None,
        buyer_id: str | None = None,
        buyer_logon_id: str | None = None,
    ) -> Trade:
        with self.sb.store.lock:
            t = self.sb.store.mark_paid("alipay", out_trade_no, success_time)
            t.extra["buyer_id"] = buyer_id or "2088" + "".join(secrets.choice("0123456789") for _ in range(12))
            t.extra["buyer_logon_id"] = buyer_logon_id or "sbx***@sandbox.com"
            self.sb.store.save_trade(t)
        self._send_notify(t)
        return t

    def expire(self, out_trade_no: str) -> Trade:
        """Alipay closes an unpaid trade on timeout and sends a TRADE_CLOSED notify."""
        t = self.sb.store.close_unpaid("alipay", out_trade_no)
        self._send_notify(t)
        return t

    def fail(self, out_trade_no: str) -> Trade:
        return self.sb.store.fail_unpaid("alipay", out_trade_no)

    def settle_refund(
        self, out_refund_no: str, status: str, *, success_time: str | None = None, only_processing: bool = False
    ) -> Refund | None:
        if only_processing:
            return None
        raise ValueError("Alipay refunds are synchronous: they are SUCCESS when alipay.trade.refund answers")

    def notify_params(self, t: Trade, refund: Refund | None = None) -> dict[str, str]:
        with self.sb.store.lock:
            status = self.trade_status(t)
            refunded = self.sb.store.refunded_total(t, include_processing=False)
        p = {
            "notify_time": fmt_time(now_cst()),
            "notify_type": "trade_status_sync",
            "notify_id": secrets.token_hex(16),
            "app_id": self.app_id,
            "auth_app_id": self.app_id,
            "charset": "utf-8",
            "version": "1.0",
            "sign_type": "RSA2",
            "trade_no": t.transaction_id,
            "out_trade_no": t.out_trade_no,
            "buyer_id": t.extra.get("buyer_id", ""),
            "buyer_logon_id": t.extra.get("buyer_logon_id", ""),
            "seller_id": self.seller_id,
            "seller_email": "merchant@sandbox.example",
            "trade_status": status,
            "total_amount": bills.yuan(t.amount),
            "receipt_amount": bills.yuan(t.amount),
            "invoice_amount": bills.yuan(t.amount),
            "buyer_pay_amount": bills.yuan(t.amount),
            "point_amount": "0.00",
            "subject": t.description,
            "gmt_create": fmt_time(t.created_at),
            "gmt_payment": fmt_time(t.success_time),
            "fund_bill_list": json.dumps(
                [{"amount": bills.yuan(t.amount), "fundChannel": "ALIPAYACCOUNT"}], separators=(",", ":")
            ),
        }
        if t.extra.get("body"):
            p["body"] = t.extra["body"]
        if t.attach:
            p["passback_params"] = t.attach
        if refund is not None:
            p.update(
                {
                    "out_biz_no": refund.out_refund_no,
                    "refund_fee": bills.yuan(refunded),
                    "gmt_refund": fmt_time(refund.success_time) + ".000",
                }
            )
            if status == "TRADE_CLOSED":
                p["gmt_close"] = fmt_time(refund.success_time)
        if status == "TRADE_CLOSED" and refund is None:
            p["gmt_close"] = fmt_time(t.closed_at)
        return {k: v for k, v in p.items() if v != ""}

    def notify_trade(self, t: Trade) -> None:
        """Send (again, under a new notify_id) the trade_status_sync of a trade's current state."""
        self._send_notify(t)

    def notify_refund(self, r: Refund) -> None:
        """Send (again) the trade_status_sync that reports a refund (out_biz_no, refund_fee)."""
        t = self.sb.store.trade("alipay", r.out_trade_no)
        if t is None or r.status != "SUCCESS":
            raise ValueError(f"refund {r.out_refund_no} has no notification to send")
        self._send_notify(t, refund=r)

    def _send_notify(self, t: Trade, refund: Refund | None = None) -> None:
        if not t.notify_url:
            return
        charset = self.notify_charset
        params = self.notify_params(t, refund)
        if charset != "utf-8":
            params["charset"] = charset
            params["voucher_detail_list"] = json.dumps(
                [
                    {
                        "id": "2018101200073002000000002",
                        "name": "满10减1元优惠券",
                        "type": "ALIPAY_FIX_VOUCHER",
                        "amount": "0.00",
                    }
                ],
                ensure_ascii=False,
                separators=(",", ":"),
            )
        params = mutated(params, self.sb.message_fault("alipay.notify"))
        ref = {"out_trade_no": t.out_trade_no}
        if refund is not None:
            ref["out_refund_no"] = refund.out_refund_no
        self.sb.notifier.submit(
            gateway="alipay",
            event=params["trade_status"] if refund is None else "REFUND." + params["trade_status"],
            url=t.notify_url,
            ref=ref,
            spec={"params": params, "charset": charset},
        )

    def _build_notification(self, spec: dict[str, Any], bad: bool) -> tuple[dict[str, str], bytes]:
        params, charset = spec["params"], spec["charset"]
        signed = dict(params)
        text = signing_string(params, exclude=("sign", "sign_type"))
        signed["sign"] = rsa_sign(self.sb.keys.alipay_private_key, text, charset=charset)
        if bad:
            signed["sign"] = ("A" if signed["sign"][0] != "A" else "B") + signed["sign"][1:]
        # the header keeps saying utf-8: the form's own (signed) charset field is what counts
        headers = {"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"}
        return headers, urlencode(signed, encoding=charset).encode("ascii")

    # ================================================================ cashier hooks
    def describe(self, t: Trade) -> dict[str, Any]:
        return {
            "trade_status": self.trade_status(t),
            "trade_no": t.transaction_id,
            "total_amount": bills.yuan(t.amount),
        }

    def cashier_qr(self, t: Trade) -> str | None:
        return None

    def return_location(self, t: Trade, redirect: str) -> str | None:
        if not t.return_url:
            return redirect or None
        method = t.extra.get("method", "alipay.trade.page.pay")
        p = {
            "charset": "utf-8",
            "out_trade_no": t.out_trade_no,
            "method": method + ".return",
            "total_amount": bills.yuan(t.amount),
            "trade_no": t.transaction_id,
            "auth_app_id": self.app_id,
            "version": "1.0",
            "app_id": self.app_id,
            "sign_type": "RSA2",
            "seller_id": self.seller_id,
            "timestamp": fmt_time(now_cst()),
        }
        p = mutated(p, self.sb.message_fault("alipay.return"))
        p["sign"] = rsa_sign(self.sb.keys.alipay_private_key, signing_string(p, exclude=("sign", "sign_type")))
        sep = "&" if "?" in t.return_url else "?"
        return t.return_url + sep + urlencode(p)
