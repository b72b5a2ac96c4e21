# ruff: noqa: RUF001  (Chinese protocol text uses full-width punctuation)
"""Fake WeChat Pay API v3 (direct merchant): prepay, query, close, refunds, certificates, bills; Pay Score
service orders in `sandbox.wechat_payscore`."""

from __future__ import annotations

import contextlib
import datetime as dt
import gzip
import hashlib
import json
import re
import secrets
import uuid
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from . import bills
from . import wechat_crypto as wc
from . import wechat_shapes as shapes
from .faults import Fault, mutated
from .server import Request, Response
from .state import Refund, Trade, now_cst, parse_time, rfc3339
from .wechat_payscore import PayScore

if TYPE_CHECKING:
    from .server import Sandbox

OUT_NO_RE = re.compile(r"^[0-9A-Za-z_\-*|]{1,64}$")
OUT_TRADE_NO_RE = re.compile(r"^[0-9A-Za-z_\-*]{1,32}$")
TRADE_TYPES = {"jsapi": "JSAPI", "native": "NATIVE", "h5": "MWEB", "app": "APP"}
TIMESTAMP_WINDOW = 300
# apply-abnormal-refund `type` -> the refund's `channel` afterwards (PROTOCOLS F.2)
ABNORMAL_CHANNELS = {"USER_BANK_CARD": "OTHER_BANKCARD", "MERCHANT_BANK_CARD": "OTHER_BALANCE"}


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, detail: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.detail = status, code, message, detail


def _bad_param(message: str, field: str | None = None) -> ApiError:
    detail = {"field": field, "location": "body"} if field else None
    return ApiError(400, "PARAM_ERROR", message, detail)


class WeChatGateway:
    name = "wechat"

    def __init__(self, sb: Sandbox) -> None:
        self.sb = sb
        self.creds = sb.keys.credentials["wechat"]
        # WeChat's key switch (PROTOCOLS F.1): by default answers follow the request (public-key mode when
        # it carried Wechatpay-Serial: PUB_KEY_ID_...); the control API can force "cert" or "pubkey".
        self.signing_override: str | None = None
        self._rogue = wc.new_rsa_key()  # signs `mutate` faults with sign_with=rogue: a serial nobody knows
        self._rogue_serial = secrets.token_hex(20).upper()
        sb.notifier.register("wechat", self._build_notification, lambda status, body: status in (200, 204))
        r = sb.router
        r.add("POST", r"/v3/pay/transactions/(?P<kind>jsapi|native|h5|app)", self.pay)
        r.add("GET", r"/v3/pay/transactions/out-trade-no/(?P<no>[^/]+)", self.query_by_out_trade_no)
        r.add("GET", r"/v3/pay/transactions/id/(?P<txn>[^/]+)", self.query_by_id)
        r.add("POST", r"/v3/pay/transactions/out-trade-no/(?P<no>[^/]+)/close", self.close)
        r.add("POST", r"/v3/refund/domestic/refunds", self.refund)
        r.add("GET", r"/v3/refund/domestic/refunds/(?P<no>[^/]+)", self.query_refund)
        r.add("POST", r"/v3/refund/domestic/refunds/(?P<refund_id>[^/]+)/apply-abnormal-refund", self.abnormal_refund)
        r.add("GET", r"/v3/certificates", self.certificates)
        r.add("GET", r"/v3/bill/tradebill", self.trade_bill)
        r.add("GET", r"/v3/billdownload/file", self.bill_download)
        self.payscore = PayScore(sb, self)

    # ================================================================ plumbing
    def _mode(self, req: Request) -> str:
        serial = req.headers.get("Wechatpay-Serial") or ""
        return "pubkey" if serial.startswith("PUB_KEY_ID_") else "cert"

    def serial_for(self, mode: str) -> str:
        mode = self.signing_override or mode
        return self.sb.keys.public_key_id if mode == "pubkey" else self.sb.keys.platform_serial_no

    def signer(self, mode: str, fault: Fault | None = None) -> tuple[Any, str, str | None]:
        """(private key, serial, timestamp) to sign a message with; a `mutate` fault may change them."""
        key, serial, timestamp = self.sb.keys.platform_private_key, self.serial_for(mode), None
        if fault is not None and fault.sign_with == "rogue":
            key, serial = self._rogue, self._rogue_serial
        elif fault is not None and fault.sign_with in ("cert", "pubkey"):
            serial = self.sb.keys.public_key_id if fault.sign_with == "pubkey" else self.sb.keys.platform_serial_no
        if fault is not None and fault.timestamp_skew:
            timestamp = str(int(now_cst().timestamp()) - fault.timestamp_skew)
        return key, serial, timestamp

    def _error(self, err: ApiError, mode: str | None = None) -> Response:
        """Error answer; signed (like WeChat) when the request was authenticated (`mode` known)."""
        body: dict[str, Any] = {"code": err.code, "message": err.message}
        if err.detail is not None:
            body["detail"] = err.detail
        if mode is not None:
            return self._signed(err.status, wc.dumps(body), mode)
        return Response(status=err.status, body=wc.dumps(body), content_type="application/json; charset=utf-8")

    def _signed(
        self, status: int, body: bytes, mode: str, *, corrupt: bool = False, fault: Fault | None = None
    ) -> Response:
        key, serial, timestamp = self.signer(mode, fault)
        headers = wc.signed_headers(key, serial, body, timestamp=timestamp, corrupt=corrupt)
        headers["Request-ID"] = secrets.token_hex(16)
        return Response(status=status, body=body, headers=headers, content_type="application/json; charset=utf-8")

    def _authenticate(self, req: Request) -> None:
        fields = wc.parse_authorization(req.headers.get("Authorization"))
        if fields is None:
            raise ApiError(401, "SIGN_ERROR", "Authorization不合法", {"detail": {"issue": "authorization invalid"}})
        if fields["mchid"] != self.creds["mchid"]:
            raise ApiError(401, "SIGN_ERROR", "商户号不匹配", {"detail": {"issue": "mchid not match"}})
        try:
            serial_ok = int(fields["serial_no"], 16) == self.sb.keys.merchant_cert.serial_number
        except ValueError:
            serial_ok = False
        if not serial_ok:
            raise ApiError(401, "SIGN_ERROR", "商户证书序列号有误", {"detail": {"issue": "serial_no not match"}})
        try:
            skew = abs(int(fields["timestamp"]) - int(now_cst().timestamp()))
        except ValueError:
            skew = TIMESTAMP_WINDOW + 1
        if skew > TIMESTAMP_WINDOW:
            raise ApiError(401, "SIGN_ERROR", "签名时间戳已过期", {"detail": {"issue": "timestamp expired"}})
        if not wc.verify_request(self.sb.keys.merchant_public_key, req.method, req.target, req.body, fields):
            raise ApiError(401, "SIGN_ERROR", "签名错误，请检查后再试", {"detail": {"issue": "sign not match"}})
        wp_serial = req.headers.get("Wechatpay-Serial")
        if wp_serial and wp_serial.startswith("PUB_KEY_ID_") and wp_serial != self.sb.keys.public_key_id:
            raise ApiError(400, "PARAM_ERROR", "Wechatpay-Serial 对应的微信支付公钥不存在")

    def _run(self, req: Request, target: str, fn: Any, *, download: bool = False) -> Response:
        """Authenticate, apply faults, run fn(req, mode) -> (status, body bytes), sign the answer."""
        try:
            self._authenticate(req)
        except ApiError as err:
            return self._error(err)
        mode = self._mode(req)
        fault = self.sb.api_fault(target)
        if fault and fault.kind == "timeout":
            if fault.apply:
                with contextlib.suppress(ApiError):
                    fn(req, mode)
            return self.sb.timeout_response(fault)
        if fault and fault.kind == "http_500":
            return self._error(ApiError(500, "SYSTEM_ERROR", "系统错误"))
        try:
            status, body = fn(req, mode)
        except ApiError as err:
            return self._error(err, mode)
        if download:
            return Response(status=200, body=body, content_type="application/octet-stream")
        if fault and fault.kind == "malformed":
            return self._signed(200, b'{"code_url":"weixin://wxpay/biz<<garbage>>\x00}{', mode)
        mutation = self.sb.message_fault(target)
        if mutation and body:
            body = wc.dumps(mutated(json.loads(body), mutation))
        return self._signed(status, body, mode, corrupt=bool(fault and fault.kind == "bad_signature"), fault=mutation)

    def _json_body(self, req: Request) -> dict[str, Any]:
        try:
            data = req.json()
        except (ValueError, UnicodeDecodeError):
            raise _bad_param("请求体不是合法的JSON") from None
        if not isinstance(data, dict):
            raise _bad_param("请求体不是JSON对象")
        return data

    def _check_mchid_query(self, req: Request) -> None:
        mchid = req.query.get("mchid")
        if not mchid:
            raise ApiError(
                400,
                "PARAM_ERROR",
                "输入源“/query/mchid”映射到字段“商户号”必填性规则校验失败，此字段为必填项",
                {"field": "mchid", "location": "query"},
            )
        if mchid != self.creds["mchid"]:
            raise ApiError(
                400, "PARAM_ERROR", "商户号与请求头中的商户号不一致", {"field": "mchid", "location": "query"}
            )

    # ================================================================ shapes
    def effective_state(self, t: Trade) -> str:
        return self.sb.store.derived_state(t)

    def trade_json(self, t: Trade) -> dict[str, Any]:
        return shapes.transaction(t, self.effective_state(t))

    def refund_json(self, r: Refund) -> dict[str, Any]:
        return shapes.refund(r)

    def refund_notify_json(self, r: Refund) -> dict[str, Any]:
        return shapes.refund_notification(r, self.creds["mchid"])

    # ================================================================ endpoints
    def pay(self, req: Request, kind: str) -> Response:
        return self._run(req, "wechat.pay", lambda rq, mode: self._pay(rq, mode, kind))

    def _pay(self, req: Request, mode: str, kind: str) -> tuple[int, bytes]:
        data = self._json_body(req)
        for key in ("appid", "mchid", "description", "out_trade_no", "notify_url", "amount"):
            if data.get(key) in (None, "", {}):
                raise _bad_param(f"输入源“/body/{key}”映射到值字段“{key}”必填性规则校验失败，此字段为必填项", key)
        if data["mchid"] != self.creds["mchid"]:
            raise ApiError(400, "PARAM_ERROR", "商户号mchid与请求头中的商户号不一致", {"field": "mchid"})
        if data["appid"] not in (self.creds["appid"], self.creds["mini_appid"]):
            raise ApiError(400, "APPID_MCHID_NOT_MATCH", "appid和mch_id不匹配")
        desc = data["description"]
        if not isinstance(desc, str) or len(desc) > 127:
            raise _bad_param("description 长度应在 1 到 127 个字符之间", "description")
        out_trade_no = data["out_trade_no"]
        if not isinstance(out_trade_no, str) or not OUT_TRADE_NO_RE.match(out_trade_no):
            raise _bad_param(
                "out_trade_no 只能是数字、大小写字母_-*且在同一个商户号下唯一，长度不超过32", "out_trade_no"
            )
        notify_url = data["notify_url"]
        if not isinstance(notify_url, str) or not re.match(r"^https?://[^\s]+$", notify_url) or len(notify_url) > 256:
            raise _bad_param("notify_url 格式不正确", "notify_url")
        amount = data["amount"]
        total = amount.get("total") if isinstance(amount, dict) else None
        if not isinstance(total, int) or isinstance(total, bool) or total <= 0:
            raise _bad_param("amount.total 必须为大于0的整数（单位：分）", "amount.total")
        if amount.get("currency", "CNY") != "CNY":
            raise _bad_param("amount.currency 只支持 CNY", "amount.currency")
        attach = data.get("attach") or ""
        if not isinstance(attach, str) or len(attach) > 128:
            raise _bad_param("attach 长度不能超过128", "attach")
        openid = ""
        if kind == "jsapi":
            payer = data.get("payer")
            openid = payer.get("openid") if isinstance(payer, dict) else None
            if not isinstance(openid, str) or not openid:
                raise _bad_param(
                    "输入源“/body/payer/openid”映射到值字段“用户标识”必填性规则校验失败，此字段为必填项", "payer.openid"
                )
        if kind == "h5":
            scene = data.get("scene_info")
            h5 = scene.get("h5_info") if isinstance(scene, dict) else None
            if (
                not isinstance(scene, dict)
                or not scene.get("payer_client_ip")
                or not isinstance(h5, dict)
                or not h5.get("type")
            ):
                raise _bad_param("H5支付必须传入 scene_info.payer_client_ip 与 scene_info.h5_info.type", "scene_info")
        if data.get("time_expire"):
            try:
                parse_time(str(data["time_expire"]))
            except ValueError:
                raise _bad_param("time_expire 格式不正确，应为 RFC3339", "time_expire") from None
        canonical = {
            "kind": kind,
            "appid": data["appid"],
            "total": total,
            "description": desc,
            "openid": openid,
            "attach": attach,
        }
        store = self.sb.store
        with store.lock:
            existing = store.trade("wechat", out_trade_no)
            if existing is not None:
                if existing.state in ("SUCCESS",):
                    raise ApiError(400, "ORDERPAID", "该订单已支付")
                if existing.state == "CLOSED":
                    raise ApiError(400, "ORDER_CLOSED", "订单已关闭")
                if existing.request != canonical:
                    raise ApiError(400, "INVALID_REQUEST", "201 商户订单号重复，请核实商户订单号是否重复提交")
                return 200, wc.dumps(existing.answer)
            trade = Trade(
                gateway="wechat",
                out_trade_no=out_trade_no,
                transaction_id=store.next_id("42000", 28),
                amount=total,
                trade_type=TRADE_TYPES[kind],
                description=desc,
                notify_url=notify_url,
                appid=data["appid"],
                mchid=data["mchid"],
                attach=attach,
                openid=openid,
                sign_mode=mode,
                request=canonical,
            )
            prepay_id = "wx" + now_cst().strftime("%d%H%M%S") + secrets.token_hex(13)
            trade.extra["prepay_id"] = prepay_id
            if data.get("time_expire"):
                trade.extra["time_expire"] = data["time_expire"]
            if kind in ("jsapi", "app"):
                trade.answer = {"prepay_id": prepay_id}
            elif kind == "native":
                trade.answer = {"code_url": f"weixin://wxpay/bizpayurl?pr={secrets.token_urlsafe(6)[:7]}"}
            else:
                trade.answer = {"h5_url": f"{req.base_url}/cashier/wechat/{quote(out_trade_no)}?prepay_id={prepay_id}"}
            store.add_trade(trade)
            return 200, wc.dumps(trade.answer)

    def query_by_out_trade_no(self, req: Request, no: str) -> Response:
        return self._run(req, "wechat.query", lambda rq, mode: self._query(rq, out_trade_no=no))

    def query_by_id(self, req: Request, txn: str) -> Response:
        return self._run(req, "wechat.query", lambda rq, mode: self._query(rq, transaction_id=txn))

    def _query(
        self, req: Request, out_trade_no: str | None = None, transaction_id: str | None = None
    ) -> tuple[int, bytes]:
        self._check_mchid_query(req)
        with self.sb.store.lock:
            t = self.sb.store.trade("wechat", out_trade_no, transaction_id)
            if t is None or (transaction_id and t.success_time is None and t.state != "PAYERROR"):
                raise ApiError(404, "ORDER_NOT_EXIST", "订单不存在")
            return 200, wc.dumps(self.trade_json(t))

    def close(self, req: Request, no: str) -> Response:
        return self._run(req, "wechat.close", lambda rq, mode: self._close(rq, no))

    def _close(self, req: Request, no: str) -> tuple[int, bytes]:
        data = self._json_body(req)
        if data.get("mchid") != self.creds["mchid"]:
            raise _bad_param("mchid 必填且必须与请求头中的商户号一致", "mchid")
        with self.sb.store.lock:
            t = self.sb.store.trade("wechat", no)
            if t is None:
                raise ApiError(404, "ORDER_NOT_EXIST", "订单不存在")
            if t.state == "SUCCESS":
                raise ApiError(400, "ORDERPAID", "订单已支付，不能发起关单")
            if t.state != "CLOSED":
                t.state = "CLOSED"
                t.closed_at = now_cst()
                self.sb.store.save_trade(t)
        return 204, b""

    def refund(self, req: Request) -> Response:
        return self._run(req, "wechat.refund", lambda rq, mode: self._refund(rq))

    def _refund(self, req: Request) -> tuple[int, bytes]:
        data = self._json_body(req)
        out_refund_no = data.get("out_refund_no")
        if not isinstance(out_refund_no, str) or not OUT_NO_RE.match(out_refund_no):
            raise _bad_param("out_refund_no 必填，只能是数字、大小写字母_-|*@，长度不超过64", "out_refund_no")
        amount = data.get("amount")
        if not isinstance(amount, dict):
            raise _bad_param("amount 必填", "amount")
        refund_fen, total = amount.get("refund"), amount.get("total")
        for key, val in (("refund", refund_fen), ("total", total)):
            if not isinstance(val, int) or isinstance(val, bool) or val <= 0:
                raise _bad_param(f"amount.{key} 必须为大于0的整数（单位：分）", f"amount.{key}")
        if amount.get("currency") != "CNY":
            raise _bad_param("amount.currency 必填，且只支持 CNY", "amount.currency")
        if not data.get("out_trade_no") and not data.get("transaction_id"):
            raise _bad_param("out_trade_no 与 transaction_id 必填其一", "out_trade_no")
        notify_url = data.get("notify_url") or ""
        store = self.sb.store
        with store.lock:
            existing = store.refunds.get(("wechat", out_refund_no))
            if existing is not None:
                if existing.amount != refund_fen or existing.total != total:
                    raise ApiError(400, "INVALID_REQUEST", "退款单号重复，且请求参数与原退款请求不一致")
                return 200, wc.dumps(self.refund_json(existing))
            t = store.trade("wechat", data.get("out_trade_no"), data.get("transaction_id"))
            if t is None:
                raise ApiError(404, "RESOURCE_NOT_EXISTS", "订单不存在")
            if t.success_time is None or t.state != "SUCCESS":
                raise ApiError(400, "INVALID_REQUEST", "订单状态不正确，未支付的订单不能发起退款")
            if total != t.amount:
                raise ApiError(400, "INVALID_REQUEST", "订单金额total与原订单金额不一致")
            if store.refunded_total(t) + refund_fen > t.amount:
                raise ApiError(403, "NOT_ENOUGH", "申请退款金额超过订单可退金额")
            r = Refund(
                gateway="wechat",
                out_refund_no=out_refund_no,
                refund_id=store.next_id("50", 29),
                out_trade_no=t.out_trade_no,
                transaction_id=t.transaction_id,
                amount=refund_fen,
                total=t.amount,
                reason=str(data.get("reason") or ""),
                notify_url=notify_url or t.notify_url,
            )
            if data.get("funds_account"):
                r.extra["funds_account"] = "AVAILABLE"
            r.extra["sign_mode"] = t.sign_mode
            store.add_refund(r)
            body = wc.dumps(self.refund_json(r))
        self.sb.schedule_refund_settle("wechat", out_refund_no)
        return 200, body

    def query_refund(self, req: Request, no: str) -> Response:
        return self._run(req, "wechat.query_refund", lambda rq, mode: self._query_refund(no))

    def _query_refund(self, no: str) -> tuple[int, bytes]:
        with self.sb.store.lock:
            r = self.sb.store.refunds.get(("wechat", no))
            if r is None:
                raise ApiError(404, "RESOURCE_NOT_EXISTS", "退款单不存在")
            return 200, wc.dumps(self.refund_json(r))

    def abnormal_refund(self, req: Request, refund_id: str) -> Response:
        return self._run(req, "wechat.abnormal_refund", lambda rq, mode: self._abnormal_refund(rq, refund_id))

    def _abnormal_refund(self, req: Request, refund_id: str) -> tuple[int, bytes]:
        """PROTOCOLS F.2: only for an ABNORMAL refund; USER_BANK_CARD needs bank_type and the encrypted
        bank_account / real_name (Wechatpay-Serial names the key they were encrypted for). The refund goes
        back to PROCESSING (paid out later: settled SUCCESS with REFUND.SUCCESS, like any refund). Only the
        last four digits of the account are kept."""
        data = self._json_body(req)
        out_refund_no, kind = data.get("out_refund_no"), data.get("type")
        if not isinstance(out_refund_no, str) or not OUT_NO_RE.match(out_refund_no):
            raise _bad_param("out_refund_no 必填", "out_refund_no")
        if kind not in ABNORMAL_CHANNELS:
            raise _bad_param("type 只能是 USER_BANK_CARD 或 MERCHANT_BANK_CARD", "type")
        account = ""
        if kind == "USER_BANK_CARD":
            bank_type = data.get("bank_type")
            if not isinstance(bank_type, str) or not 0 < len(bank_type) <= 16:
                raise _bad_param("退款至用户银行卡时 bank_type 必填", "bank_type")
            serial = req.headers.get("Wechatpay-Serial") or ""
            if serial not in (self.sb.keys.public_key_id, self.sb.keys.platform_serial_no):
                raise ApiError(400, "PARAM_ERROR", "敏感信息加密需要正确的 Wechatpay-Serial")
            plain = {}
            for key in ("bank_account", "real_name"):
                value = data.get(key)
                text = wc.rsa_oaep_decrypt(self.sb.keys.platform_private_key, value) if isinstance(value, str) else None
                if not text:
                    raise _bad_param(f"{key} 必填，且须使用微信支付公钥或平台证书加密", key)
                plain[key] = text
            if not plain["bank_account"].isdigit() or not 8 <= len(plain["bank_account"]) <= 32:
                raise _bad_param("bank_account 不是有效的银行卡号", "bank_account")
            account = f"{bank_type} ****{plain['bank_account'][-4:]}"
        with self.sb.store.lock:
            r = next(
                (x for x in self.sb.store.refunds.values() if x.gateway == "wechat" and x.refund_id == refund_id), None
            )
            if r is None:
                raise ApiError(404, "RESOURCE_NOT_EXISTS", "退款单不存在")
            if r.out_refund_no != out_refund_no:
                raise _bad_param("out_refund_no 与 refund_id 不匹配", "out_refund_no")
            if r.extra.get("abnormal_applied") == kind and r.status in ("PROCESSING", "SUCCESS"):
                return 200, wc.dumps(self.refund_json(r))  # the same application again: idempotent
            if r.status != "ABNORMAL":
                raise ApiError(400, "INVALID_REQUEST", "退款单状态不是退款异常，不能发起异常退款")
            r.status = "PROCESSING"
            r.extra.update(
                abnormal_applied=kind,
                channel=ABNORMAL_CHANNELS[kind],
                user_received_account=account or "商户基本账户",
            )
            self.sb.store.save_refund(r)
            body = wc.dumps(self.refund_json(r))
        self.sb.schedule_refund_settle("wechat", r.out_refund_no)
        return 200, body

    def certificates(self, req: Request) -> Response:
        return self._run(req, "wechat.certificates", lambda rq, mode: (200, wc.dumps(self.certificates_json())))

    def certificates_json(self) -> dict[str, Any]:
        cert = self.sb.keys.platform_cert
        nonce = wc.random_nonce(12)
        return {
            "data": [
                {
                    "serial_no": self.sb.keys.platform_serial_no,
                    "effective_time": rfc3339(cert.not_valid_before_utc),
                    "expire_time": rfc3339(cert.not_valid_after_utc),
                    "encrypt_certificate": {
                        "algorithm": "AEAD_AES_256_GCM",
                        "nonce": nonce,
                        "associated_data": "certificate",
                        "ciphertext": wc.aes_gcm_encrypt(
                            self.sb.keys.apiv3_key, self.sb.keys.platform_cert_pem, "certificate", nonce
                        ),
                    },
                }
            ]
        }

    def trade_bill(self, req: Request) -> Response:
        return self._run(req, "wechat.bill", lambda rq, mode: self._trade_bill(rq))

    def _trade_bill(self, req: Request) -> tuple[int, bytes]:
        q = req.query
        try:
            day = dt.date.fromisoformat(q.get("bill_date", ""))
        except ValueError:
            raise ApiError(400, "PARAM_ERROR", "bill_date 格式应为 yyyy-MM-DD", {"field": "bill_date"}) from None
        if not bills.published(day):  # today's bill, like a future day's, is not out yet
            raise ApiError(400, "INVALID_REQUEST", "账单日期须早于今天：账单次日生成")
        bill_type = q.get("bill_type", "ALL")
        if bill_type not in ("ALL", "SUCCESS", "REFUND"):
            raise ApiError(400, "PARAM_ERROR", "bill_type 只能是 ALL、SUCCESS、REFUND", {"field": "bill_type"})
        tar_type = q.get("tar_type")
        if tar_type not in (None, "", "GZIP"):
            raise ApiError(400, "PARAM_ERROR", "tar_type 只能是 GZIP", {"field": "tar_type"})
        with self.sb.store.lock:
            trades, refunds = self.sb.store.gateway_records("wechat")
            csv_text = bills.wechat_trade_bill(
                trades, refunds, day, bill_type, self.creds["mchid"], self.sb.store.bill_adjust.get("wechat")
            )
        if csv_text is None:
            raise ApiError(400, "NO_STATEMENT_EXIST", "要下载的账单不存在")
        raw = csv_text.encode("utf-8")
        payload = gzip.compress(raw, mtime=0) if tar_type == "GZIP" else raw
        token = secrets.token_urlsafe(24)
        self.sb.store.put_blob(token, "application/octet-stream", payload)
        return 200, wc.dumps(
            {
                "hash_type": "SHA1",
                "hash_value": hashlib.sha1(raw).hexdigest(),  # noqa: S324 - WeChat's protocol says SHA1
                "download_url": f"{req.base_url}/v3/billdownload/file?token={token}",
            }
        )

    def bill_download(self, req: Request) -> Response:
        def fn(rq: Request, mode: str) -> tuple[int, bytes]:
            blob = self.sb.store.get_blob(rq.query.get("token", ""))
            if blob is None:
                raise ApiError(400, "INVALID_REQUEST", "下载链接已失效")
            return 200, blob[1]

        return self._run(req, "wechat.bill_download", fn, download=True)

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
            t = self.sb.store.mark_paid("wechat", out_trade_no, success_time)
            if openid:
                t.openid = openid
            if not t.openid:
                t.openid = "o" + secrets.token_urlsafe(20)[:27]
            t.extra["bank_type"] = bank_type or "OTHERS"
            self.sb.store.save_trade(t)
        self.notify_trade(t)
        return t

    def notify_trade(self, t: Trade) -> None:
        """Send (again, under a new id) the TRANSACTION.SUCCESS notification of a paid trade."""
        with self.sb.store.lock:
            if t.success_time is None:
                raise ValueError(f"transaction {t.out_trade_no} is not paid: WeChat notifies only payments")
            plaintext = self.trade_json(t)
            mode, url = t.sign_mode, t.notify_url
        ref = {"out_trade_no": t.out_trade_no}
        self._notify("TRANSACTION.SUCCESS", url, mode, ref, wc.build_transaction_notification, plaintext)

    def expire(self, out_trade_no: str) -> Trade:
        """The gateway closes an unpaid trade itself (time_expire passed); no notification."""
        return self.sb.store.close_unpaid("wechat", out_trade_no)

    def fail(self, out_trade_no: str) -> Trade:
        return self.sb.store.fail_unpaid("wechat", out_trade_no)

    def settle_refund(
        self, out_refund_no: str, status: str, *, success_time: str | None = None, only_processing: bool = False
    ) -> Refund | None:
        with self.sb.store.lock:
            r = self.sb.store.settle_refund(
                "wechat", out_refund_no, status, success_time=success_time, only_processing=only_processing
            )
            if r is None:
                return None
        self.notify_refund(r)
        return r

    def notify_refund(self, r: Refund) -> None:
        """Send (again, under a new id) the REFUND.{status} notification of a settled refund."""
        with self.sb.store.lock:
            if r.status == "PROCESSING":
                raise ValueError(f"refund {r.out_refund_no} is PROCESSING: WeChat notifies only its outcome")
            plaintext = self.refund_notify_json(r)
            mode, url = r.extra.get("sign_mode", "cert"), r.notify_url
        ref = {"out_trade_no": r.out_trade_no, "out_refund_no": r.out_refund_no}
        self._notify(f"REFUND.{r.status}", url, mode, ref, wc.build_refund_notification, plaintext)

    def _notify(
        self, event: str, url: str, mode: str, ref: dict[str, str], make: Any, plaintext: dict[str, Any]
    ) -> None:
        """Submit a notification whose body `make(plaintext, ...)` (a `wc.build_*_notification`) builds once: the
        body (id, ciphertext) stays the same across retries, the headers are signed again for each attempt."""
        if not url:
            return
        mutation = self.sb.message_fault("wechat.notify")
        plaintext = mutated(plaintext, mutation)
        priv, serial, timestamp = self.signer(mode, mutation)
        body = make(
            plaintext,
            apiv3_key=self.sb.keys.apiv3_key,
            private_key=priv,
            serial=serial,
            notify_id=str(uuid.uuid4()),
            bad_signature=False,
        )[1]
        rogue = mutation is not None and mutation.sign_with == "rogue"
        spec = {"body": body.decode("utf-8"), "serial": serial, "timestamp": timestamp, "rogue": rogue}
        self.sb.notifier.submit(gateway="wechat", event=event, url=url, ref=ref, spec=spec)

    def _build_notification(self, spec: dict[str, Any], bad: bool) -> tuple[dict[str, str], bytes]:
        body = spec["body"].encode("utf-8")
        key = self._rogue if spec.get("rogue") else self.sb.keys.platform_private_key
        headers = {"Content-Type": "application/json", "User-Agent": "Mozilla/4.0"}
        headers.update(wc.signed_headers(key, spec["serial"], body, timestamp=spec.get("timestamp"), corrupt=bad))
        return headers, body

    def describe(self, t: Trade) -> dict[str, Any]:
        return self.trade_json(t)

    def cashier_qr(self, t: Trade) -> str | None:
        return t.answer.get("code_url") if t.trade_type == "NATIVE" else None

    def return_location(self, t: Trade, redirect: str) -> str | None:
        return redirect or None
