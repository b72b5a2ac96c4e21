"""``gateway_probe``: one harmless signed call per gateway, to prove the credentials both ways.

The call queries a trade that does not exist (``out_trade_no`` = ``PROBE`` + random). A gateway
that accepted our signature answers "no such trade" (WeChat ``ORDER_NOT_EXIST``, Alipay
``ACQ.TRADE_NOT_EXIST``, Wallyt ``ORDERNOTEXIST``) and signs that answer; we verify it with the
gateway's key. So each result says whether our signature was accepted (our private key, serial
and ids) and whether the answer verified (the gateway's public key), with the setting to fix.
Nothing is created, paid or closed. WeChat's answer also carries a ``Date``: the clock is
compared with it.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any

import requests
from django.utils import timezone

from core.errors import ChannelNotConfigured, DomainError, GatewayUnavailable, TradeNotFound
from payments.gateways.registry import get_gateway

CLOCK_SKEW_LIMIT_SECONDS = 60
GATEWAYS = ("wechat", "alipay", "wallyt")


@dataclass(frozen=True)
class ProbeResult:
    gateway: str
    ok: bool
    signature_accepted: bool | None  # None: the call did not get that far
    answer_verified: bool | None
    said: str  # what the gateway answered, in its words
    fix: str = ""  # what to change when not ok
    clock_skew_seconds: float | None = None

    def line(self) -> str:
        accepted = {True: "accepted", False: "REFUSED", None: "not tried"}[self.signature_accepted]
        verified = {True: "verified", False: "DOES NOT VERIFY", None: "not checked"}[self.answer_verified]
        text = f"{self.gateway}: {'ok' if self.ok else 'FAILED'}: our signature {accepted}, answer {verified}"
        text += f" ({self.said})"
        if self.clock_skew_seconds is not None:
            text += f"; clock {self.clock_skew_seconds:+.0f} s from the gateway's"
        return text + (f"\n    fix: {self.fix}" if self.fix else "")


def probe_trade_no() -> str:
    return f"PROBE{secrets.token_hex(10).upper()}"  # 25 characters, [0-9A-Z]: valid for every gateway


def probe(name: str) -> ProbeResult:
    """Probe one gateway (``wechat``, ``alipay`` or ``wallyt``); never raises for a gateway's answer."""
    try:
        gateway = get_gateway(name)
    except ChannelNotConfigured as exc:
        return ProbeResult(name, False, None, None, exc.message, fix="Set the settings it names (README, Going live).")
    return {"wechat": _probe_wechat, "alipay": _probe_alipay, "wallyt": _probe_wallyt}[name](gateway)


# --------------------------------------------------------------------------- WeChat Pay


def _probe_wechat(gateway) -> ProbeResult:
    """The query is sent by hand (the SDK's own signing, ``build_authorization``) because the SDK
    does not verify, nor return the headers of, a non-2xx answer: here the answer is verified too."""
    from wechatpayv3.utils import build_authorization

    try:
        core = gateway.client()._core
    except DomainError as exc:  # certificate mode downloads the platform certificates first
        return ProbeResult("wechat", False, None, None, exc.message, fix=_WECHAT_REACH)
    config = gateway.config
    path = f"/v3/pay/transactions/out-trade-no/{probe_trade_no()}?mchid={config.mchid}"
    headers = {
        "Accept": "application/json",
        "Content-Type": "application/json",
        "Authorization": build_authorization(path, "GET", config.mchid, config.merchant_serial_no, core._private_key),
    }
    if config.public_key_id:
        headers["Wechatpay-Serial"] = config.public_key_id
    try:
        response = requests.get(config.api_base.rstrip("/") + path, headers=headers, timeout=(5, 15))
    except requests.RequestException as exc:
        return ProbeResult(
            "wechat", False, None, None, f"{config.api_base} cannot be reached: {exc}", fix=_WECHAT_REACH
        )
    code, message = _wechat_code(response.text)
    said = f"HTTP {response.status_code} {code} {message}".strip()
    skew = _skew(response.headers.get("Date"))
    if response.status_code == 401 or code == "SIGN_ERROR":
        return ProbeResult("wechat", False, False, None, said, fix=_WECHAT_SIGN, clock_skew_seconds=skew)
    verified = _wechat_verified(core, response)
    if not verified:
        fix = "WECHAT_PAY_PUBLIC_KEY_PATH and WECHAT_PAY_PUBLIC_KEY_ID must be WeChat Pay's public key and its id "
        fix += "(or WECHAT_PAY_PLATFORM_CERT_DIR its platform certificates)."
        return ProbeResult("wechat", False, True, False, said, fix=fix, clock_skew_seconds=skew)
    if code != "ORDER_NOT_EXIST":
        return ProbeResult("wechat", False, True, True, said, fix="An unexpected answer: see what it says.")
    return _with_clock(ProbeResult("wechat", True, True, True, said, clock_skew_seconds=skew))


_WECHAT_REACH = "Check WECHAT_PAY_API_BASE, DNS and the firewall (outbound HTTPS to the gateway)."
_WECHAT_SIGN = (
    "WECHAT_PAY_PRIVATE_KEY_PATH must be apiclient_key.pem of the certificate whose serial is WECHAT_PAY_SERIAL_NO "
    "(manage.py check compares them when WECHAT_PAY_CERT_PATH is set), WECHAT_PAY_MCHID the merchant id, "
    "and the clock right."
)


def _wechat_code(text: str) -> tuple[str, str]:
    try:
        data = json.loads(text)
    except ValueError:
        return "", ""
    return (str(data.get("code", "")), str(data.get("message", ""))) if isinstance(data, dict) else ("", "")


def _wechat_verified(core, response: requests.Response) -> bool:
    if not response.headers.get("Wechatpay-Signature"):
        return False
    try:
        return bool(core._verify_signature(response.headers, response.text))
    except Exception:  # noqa: BLE001 - the SDK raises bare Exception for an unknown algorithm
        return False


def _skew(date_header: str | None) -> float | None:
    try:
        theirs = parsedate_to_datetime(date_header) if date_header else None
    except (TypeError, ValueError):
        return None
    return None if theirs is None else (timezone.now() - theirs).total_seconds()


def _with_clock(result: ProbeResult) -> ProbeResult:
    if result.clock_skew_seconds is None or abs(result.clock_skew_seconds) <= CLOCK_SKEW_LIMIT_SECONDS:
        return result
    fix = "Synchronise this host's clock (NTP): signed requests carry a timestamp the gateway checks."
    return ProbeResult(**{**result.__dict__, "ok": False, "fix": fix})


# --------------------------------------------------------------------------- Alipay


def _probe_alipay(gateway) -> ProbeResult:
    """The SDK verifies the answer's signature itself (and raises when it is missing or wrong)."""
    from alipay.exceptions import AliPayException, AliPayValidationError

    fix_private = (
        "ALIPAY_PRIVATE_KEY (or _PATH) must be the app private key whose public key is uploaded for ALIPAY_APP_ID, "
        "signing RSA2."
    )
    fix_public = "ALIPAY_PUBLIC_KEY (or _PATH) must be the Alipay public key (支付宝公钥), not the app public key."
    try:
        answer: Any = gateway.client.api_alipay_trade_query(out_trade_no=probe_trade_no())
    except AliPayValidationError:
        return ProbeResult("alipay", False, True, False, "the answer's signature does not verify", fix=fix_public)
    except AliPayException as exc:  # an unsigned answer: a gateway-level refusal
        said = str(exc)
        refused = "signature" in said or "app-id" in said or "app_id" in said
        fix = f"{fix_private} Check ALIPAY_APP_ID." if refused else "See what Alipay says."
        return ProbeResult("alipay", False, False if refused else None, None, said, fix=fix)
    except (OSError, ValueError) as exc:
        return ProbeResult("alipay", False, None, None, f"cannot be reached: {exc}", fix="Check ALIPAY_GATEWAY.")
    sub_code = str(answer.get("sub_code", ""))
    said = f"{answer.get('code')} {sub_code} {answer.get('sub_msg', '')}".strip()
    if sub_code in ("isv.invalid-signature", "isv.invalid-app-id", "isv.invalid-signature-type"):
        return ProbeResult("alipay", False, False, True, said, fix=f"{fix_private} Check ALIPAY_APP_ID.")
    if sub_code != "ACQ.TRADE_NOT_EXIST":
        return ProbeResult("alipay", False, True, True, said, fix="An unexpected answer: see what it says.")
    return ProbeResult("alipay", True, True, True, said)


# --------------------------------------------------------------------------- Wallyt


def _probe_wallyt(gateway) -> ProbeResult:
    """The adapter checks the answer's signature before it reads the result (PROTOCOLS C.1)."""
    fix_key = "WALLYT_SECRET_KEY (MD5; or the RSA keys of WALLYT_SIGN_TYPE) and WALLYT_MCH_ID must be Wallyt's."
    try:
        gateway.query(probe_trade_no())
    except TradeNotFound as exc:
        return ProbeResult("wallyt", True, True, True, f"{exc.gateway_code} {exc.message}")
    except GatewayUnavailable as exc:
        if "status" in exc.details:  # an unsigned refusal: the signature, the merchant id, the sign type
            return ProbeResult("wallyt", False, False, None, exc.message, fix=fix_key)
        if "signature" in exc.message:
            return ProbeResult("wallyt", False, True, False, exc.message, fix=fix_key)
        return ProbeResult("wallyt", False, None, None, exc.message, fix="Check WALLYT_API_URL and the network.")
    except DomainError as exc:
        return ProbeResult("wallyt", False, True, True, exc.message, fix="An unexpected answer: see what it says.")
    return ProbeResult("wallyt", False, True, True, "a trade with the probe's number exists?", fix="Probe again.")
