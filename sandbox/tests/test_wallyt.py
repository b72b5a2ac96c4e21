"""Wallyt / SwiftPass sandbox, exercised with plain requests and our own MD5 signing."""

from __future__ import annotations

import datetime as dt
import json
import secrets
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import requests

from sandbox.testing import SandboxHandle
from sandbox.wallyt import parse_xml, sign_params

from .conftest import Receiver


class Client:
    def __init__(self, sandbox: SandboxHandle) -> None:
        self.url = sandbox.wallyt_url
        self.mch_id = sandbox.credentials["wallyt"]["mch_id"]
        self.key = sandbox.read("wallyt/secret_key").strip()

    def call(
        self,
        service: str,
        cdata: bool = False,
        sign: str | None = None,
        timeout: float = 5,
        sign_type: str = "MD5",
        **fields: Any,
    ) -> dict[str, str]:
        params = {
            "service": service,
            "version": "2.0",
            "charset": "UTF-8",
            "sign_type": sign_type,
            "mch_id": self.mch_id,
            "nonce_str": secrets.token_hex(8),
            **{k: str(v) for k, v in fields.items()},
        }
        params["sign"] = sign or sign_params(params, self.key, sign_type).lower()  # case-insensitive on the way in
        wrap = (lambda v: f"<![CDATA[{v}]]>") if cdata else (lambda v: v)
        xml = "<xml>" + "".join(f"<{k}>{wrap(v)}</{k}>" for k, v in params.items()) + "</xml>"
        resp = requests.post(self.url, data=xml.encode(), headers={"Content-Type": "text/xml"}, timeout=timeout)
        assert resp.status_code == 200, resp.text
        out = parse_xml(resp.content)
        if out["status"] == "0":
            assert out["sign"] == sign_params(out, self.key, out["sign_type"]), "response signature"
        return out


@pytest.fixture
def wl(sandbox: SandboxHandle) -> Client:
    return Client(sandbox)


def jspay(wl: Client, no: str, notify_url: str = "https://m.example/n", total: int = 100, **kw: Any) -> dict[str, str]:
    return wl.call(
        "pay.weixin.jspay",
        out_trade_no=no,
        body="柜子",
        total_fee=total,
        mch_create_ip="1.2.3.4",
        notify_url=notify_url,
        sub_openid="oSUB",
        sub_appid="wxsub",
        is_raw=1,
        **kw,
    )


def test_jspay_query_close(wl: Client, uid: str) -> None:
    r = jspay(wl, uid, cdata=True)
    assert r["status"] == "0" and r["result_code"] == "0" and r["token_id"]
    info = json.loads(r["pay_info"])
    assert set(info) >= {"appId", "timeStamp", "nonceStr", "package", "signType", "paySign"}
    assert info["package"].startswith("prepay_id=")
    assert jspay(wl, uid)["token_id"] == r["token_id"]
    assert jspay(wl, uid, total=5)["err_code"] == "OUT_TRADE_NO_USED"
    assert jspay(wl, uid + "T", time_expire="2024-01-01")["err_code"] == "PARAM_ERROR"
    q = wl.call("unified.trade.query", out_trade_no=uid)
    assert q["trade_state"] == "NOTPAY" and q["total_fee"] == "100"
    assert wl.call("unified.trade.close", out_trade_no=uid)["result_code"] == "0"
    assert wl.call("unified.trade.query", out_trade_no=uid)["trade_state"] == "CLOSED"
    nf = wl.call("unified.trade.query", out_trade_no="NONE" + uid[:10])
    assert nf["result_code"] == "1" and nf["err_code"] == "ORDERNOTEXIST"


def test_comm_errors(wl: Client, sandbox: SandboxHandle, uid: str) -> None:
    bad = wl.call("unified.trade.query", out_trade_no=uid, sign="0" * 32)
    assert bad["status"] != "0" and "sign" not in bad and bad["message"]
    assert wl.call("no.such.service")["status"] != "0"
    evil = b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e "boom">]><xml><service>&e;</service></xml>'
    out = parse_xml(requests.post(wl.url, data=evil).content)
    assert out["status"] != "0"


def test_pay_notify_refunds(sandbox: SandboxHandle, wl: Client, receiver: Receiver, uid: str) -> None:
    receiver.replies = [(200, b"fail")]
    receiver.default = (200, b"success")
    jspay(wl, uid, notify_url=receiver.url + "/wl", total=500, attach="x")
    page = requests.get(f"{sandbox.base_url}/cashier/wallyt/{uid}")
    assert page.status_code == 200 and "确认支付" in page.text
    requests.post(f"{sandbox.base_url}/cashier/wallyt/{uid}/pay")
    got = sandbox.wait_for(lambda: len(receiver.received("/wl")) >= 2 and receiver.received("/wl"))
    note = parse_xml(got[1]["body"])
    assert note["sign"] == sign_params(note, wl.key)
    assert note["pay_result"] == "0" and note["total_fee"] == "500" and note["out_trade_no"] == uid
    q = wl.call("unified.trade.query", out_trade_no=uid)
    assert q["trade_state"] == "SUCCESS" and len(q["time_end"]) == 14
    r = wl.call(
        "unified.trade.refund",
        out_trade_no=uid,
        out_refund_no="R" + uid,
        total_fee=500,
        refund_fee=200,
        op_user_id=wl.mch_id,
    )
    assert r["result_code"] == "0" and r["refund_fee"] == "200"
    assert (
        wl.call(
            "unified.trade.refund",
            out_trade_no=uid,
            out_refund_no="R" + uid,
            total_fee=500,
            refund_fee=200,
            op_user_id=wl.mch_id,
        )["refund_id"]
        == r["refund_id"]
    )
    over = wl.call(
        "unified.trade.refund",
        out_trade_no=uid,
        out_refund_no="S" + uid,
        total_fee=500,
        refund_fee=301,
        op_user_id=wl.mch_id,
    )
    assert over["result_code"] == "1"
    rq = wl.call("unified.trade.refundquery", out_trade_no=uid)
    assert rq["refund_count"] == "1" and rq["refund_status_0"] == "PROCESSING" and rq["out_refund_no_0"] == "R" + uid
    sandbox.control(f"wallyt/refunds/R{uid}/settle", json={"status": "SUCCESS"})
    rq = wl.call("unified.trade.refundquery", out_refund_no="R" + uid)
    assert rq["refund_status_0"] == "SUCCESS"
    assert wl.call("unified.trade.query", out_trade_no=uid)["trade_state"] == "REFUND"


def test_faults(sandbox: SandboxHandle, wl: Client, uid: str) -> None:
    sandbox.fault("wallyt.query", "bad_signature")
    with pytest.raises(AssertionError, match="response signature"):
        wl.call("unified.trade.query", out_trade_no=uid)
    sandbox.fault("wallyt.query", "http_500")
    with pytest.raises(AssertionError):
        wl.call("unified.trade.query", out_trade_no=uid)
    sandbox.fault("wallyt.query", "timeout", ms=1200)
    with pytest.raises(requests.exceptions.ReadTimeout):
        wl.call("unified.trade.query", out_trade_no=uid, timeout=0.5)


def test_sha256_sign_type(wl: Client, uid: str) -> None:
    r = wl.call("unified.trade.query", sign_type="SHA256", out_trade_no=uid)
    assert r["status"] == "0" and r["sign_type"] == "SHA256" and r["err_code"] == "ORDERNOTEXIST"


def test_bill_of_today_or_later_is_not_published(sandbox: SandboxHandle, wl: Client, uid: str) -> None:
    """A day's bill comes out the next morning: today's, like a later day's, is refused (XML status 400)."""
    jspay(wl, uid)
    sandbox.control(f"wallyt/transactions/{uid}/pay", json={})  # paid today
    today = dt.datetime.now(ZoneInfo("Asia/Shanghai")).date()

    def bill(day: dt.date) -> requests.Response:
        params = {"service": "pay.bill.merchant", "version": "1.0", "charset": "UTF-8", "sign_type": "MD5"}
        params |= {"mch_id": wl.mch_id, "bill_date": f"{day:%Y%m%d}", "bill_type": "ALL", "nonce_str": uid}
        params["sign"] = sign_params(params, wl.key, "MD5")
        xml = "<xml>" + "".join(f"<{k}>{v}</{k}>" for k, v in params.items()) + "</xml>"
        return requests.post(sandbox.wallyt_bill_url, data=xml.encode(), timeout=5)

    for day in (today, today + dt.timedelta(days=1)):
        answer = bill(day)
        assert answer.content.startswith(b"<xml"), answer.text
        assert parse_xml(answer.content)["status"] == "400"
    assert bill(today - dt.timedelta(days=1)).text.lstrip("\ufeff").startswith("交易时间")  # yesterday's is out
