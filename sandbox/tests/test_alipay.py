"""Alipay sandbox, exercised with the real python-alipay-sdk client."""

from __future__ import annotations

import datetime as dt
import io
import zipfile
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from alipay import AliPay
from alipay.exceptions import AliPayException, AliPayValidationError

from sandbox.testing import SandboxHandle

from .conftest import Receiver


def make_client(sandbox: SandboxHandle, notify_url: str | None = None, app_key: str | None = None) -> AliPay:
    client = AliPay(
        appid=sandbox.credentials["alipay"]["app_id"],
        app_notify_url=notify_url,
        app_private_key_string=app_key or sandbox.read("alipay/app_private_key.pem"),
        alipay_public_key_string=sandbox.read("alipay/alipay_public_key.pem"),
        sign_type="RSA2",
    )
    client._gateway = sandbox.alipay_gateway
    return client


def open_cashier(client: AliPay, no: str, total: str = "12.34", wap: bool = False, **kw: Any) -> requests.Response:
    fn = client.api_alipay_trade_wap_pay if wap else client.api_alipay_trade_page_pay
    order_string = fn(subject="柜子 locker", out_trade_no=no, total_amount=total, **kw)
    return requests.get(client._gateway + "?" + order_string)


def flat(qs: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(qs, keep_blank_values=True).items()}


def test_page_pay_notify_and_return(sandbox: SandboxHandle, receiver: Receiver, uid: str) -> None:
    receiver.default = (200, b"success")
    receiver.replies = [(200, b"fail"), (500, b"success")]
    client = make_client(sandbox, notify_url=receiver.url + "/ali")
    page = open_cashier(client, uid, return_url="https://m.example/return?x=1")
    assert page.status_code == 200 and "确认支付" in page.text and "12.34" in page.text
    q = client.api_alipay_trade_query(out_trade_no=uid)
    assert q["code"] == "10000" and q["trade_status"] == "WAIT_BUYER_PAY"
    resp = requests.post(f"{sandbox.base_url}/cashier/alipay/{uid}/pay", allow_redirects=False)
    assert resp.status_code == 303
    location = urlsplit(resp.headers["Location"])
    assert location.netloc == "m.example"
    ret = flat(location.query)
    assert ret["x"] == "1" and ret["method"] == "alipay.trade.page.pay.return" and ret["total_amount"] == "12.34"
    ret.pop("x")
    sign = ret.pop("sign")
    assert client.verify(ret, sign)
    got = sandbox.wait_for(lambda: len(receiver.received("/ali")) >= 3 and receiver.received("/ali"))
    data = flat(got[0]["body"].decode())
    sign = data.pop("sign")
    assert client.verify(data, sign)
    assert data["trade_status"] == "TRADE_SUCCESS" and data["out_trade_no"] == uid
    assert data["total_amount"] == "12.34" and data["notify_type"] == "trade_status_sync"
    n = sandbox.wait_for(lambda: [d for d in sandbox.notifications(out_trade_no=uid) if d["state"] == "delivered"])
    assert [a["status"] for a in n[0]["attempts"]] == [200, 500, 200]
    q = client.api_alipay_trade_query(out_trade_no=uid)
    assert q["trade_status"] == "TRADE_SUCCESS" and q["total_amount"] == "12.34" and q["send_pay_date"]
    assert client.api_alipay_trade_query(trade_no=q["trade_no"])["out_trade_no"] == uid
    close = client.api_alipay_trade_close(out_trade_no=uid)
    assert close["code"] == "40004" and close["sub_code"] == "ACQ.TRADE_STATUS_ERROR"


def test_wap_pay_query_close_unknown(sandbox: SandboxHandle, uid: str) -> None:
    client = make_client(sandbox)
    q = client.api_alipay_trade_query(out_trade_no=uid)
    assert q["code"] == "40004" and q["sub_code"] == "ACQ.TRADE_NOT_EXIST"
    assert open_cashier(client, uid, wap=True).status_code == 200
    assert open_cashier(client, uid, total="1.00", wap=True).status_code == 400  # tampered amount
    assert client.api_alipay_trade_close(out_trade_no=uid)["code"] == "10000"
    assert client.api_alipay_trade_query(out_trade_no=uid)["trade_status"] == "TRADE_CLOSED"
    assert client.api_alipay_trade_close(out_trade_no=uid)["sub_code"] == "ACQ.TRADE_STATUS_ERROR"
    r = client.api_alipay_trade_refund("1.00", out_trade_no=uid)
    assert r["sub_code"] == "ACQ.TRADE_HAS_CLOSE"


def test_refunds(sandbox: SandboxHandle, receiver: Receiver, uid: str) -> None:
    receiver.default = (200, b"success")
    client = make_client(sandbox, notify_url=receiver.url + "/r")
    open_cashier(client, uid, total="10.00")
    r = client.api_alipay_trade_refund("1.00", out_trade_no=uid, out_request_no="A")
    assert r["code"] == "40004" and r["sub_code"] == "ACQ.TRADE_STATUS_ERROR"
    sandbox.control(f"alipay/transactions/{uid}/pay", json={})
    r = client.api_alipay_trade_refund("3.00", out_trade_no=uid, out_request_no="A")
    assert r["code"] == "10000" and r["fund_change"] == "Y" and r["refund_fee"] == "3.00"
    again = client.api_alipay_trade_refund("3.00", out_trade_no=uid, out_request_no="A")
    assert again["code"] == "10000" and again["fund_change"] == "N"
    assert (
        client.api_alipay_trade_refund("4.00", out_trade_no=uid, out_request_no="A")["sub_code"]
        == "ACQ.DISCORDANT_REPEAT_REQUEST"
    )
    assert (
        client.api_alipay_trade_refund("7.01", out_trade_no=uid, out_request_no="B")["sub_code"]
        == "ACQ.REFUND_AMT_NOT_EQUAL_TOTAL"
    )
    q = client.api_alipay_trade_fastpay_refund_query("A", out_trade_no=uid)
    assert q["refund_status"] == "REFUND_SUCCESS" and q["refund_amount"] == "3.00"
    q = client.api_alipay_trade_fastpay_refund_query("ZZ", out_trade_no=uid)
    assert q["code"] == "10000" and "refund_status" not in q
    r = client.api_alipay_trade_refund("7.00", out_trade_no=uid, out_request_no="B")
    assert r["refund_fee"] == "10.00"
    assert client.api_alipay_trade_query(out_trade_no=uid)["trade_status"] == "TRADE_CLOSED"
    got = sandbox.wait_for(lambda: len(receiver.received("/r")) >= 3 and receiver.received("/r"))
    statuses = []
    for g in got:
        data = flat(g["body"].decode())
        assert client.verify(dict(data, sign="x") and {k: v for k, v in data.items() if k != "sign"}, data["sign"])
        statuses.append((data["trade_status"], data.get("refund_fee")))
    assert sorted(statuses, key=str) == sorted(
        [("TRADE_SUCCESS", None), ("TRADE_SUCCESS", "3.00"), ("TRADE_CLOSED", "10.00")], key=str
    )


def test_signature_and_gateway_errors(sandbox: SandboxHandle, uid: str) -> None:
    other = make_client(sandbox, app_key=sandbox.read("alipay/alipay_private_key.pem"))  # wrong app key
    r = other.api_alipay_trade_query(out_trade_no=uid)  # signed 40002, returned (not raised) like real Alipay
    assert r["code"] == "40002" and r["sub_code"] == "isv.invalid-signature" and "&amp;" in r["sub_msg"]
    wrong_app = make_client(sandbox)
    wrong_app._appid = "2021000000000000"
    with pytest.raises(AliPayException) as exc:
        wrong_app.api_alipay_trade_query(out_trade_no=uid)
    assert "isv.invalid-app-id" in str(exc.value)
    # form POST works too (official SDKs)
    client = make_client(sandbox)
    data = client.build_body("alipay.trade.query", {"out_trade_no": uid})
    signed = client.sign_data(data)
    resp = requests.post(client._gateway, data=flat(signed))
    assert resp.headers["Content-Type"] == "application/json;charset=utf-8"
    assert (
        client._verify_and_return_sync_response(resp.text, "alipay_trade_query_response")["sub_code"]
        == "ACQ.TRADE_NOT_EXIST"
    )


def test_bill(sandbox: SandboxHandle, uid: str) -> None:
    client = make_client(sandbox)
    day = dt.date(2023, 1, 1) + dt.timedelta(days=int(uid[:4], 16) % 300)
    open_cashier(client, uid, total="20.00")
    sandbox.control(f"alipay/transactions/{uid}/pay", json={"success_time": f"{day}T08:00:00+08:00"})
    r = client.server_api(
        "alipay.data.dataservice.bill.downloadurl.query", {"bill_type": "trade", "bill_date": str(day)}
    )
    assert r["code"] == "10000"
    raw = requests.get(r["bill_download_url"]).content
    with zipfile.ZipFile(io.BytesIO(raw)) as zf:
        names = zf.namelist()
        detail = next(n for n in names if n.endswith("业务明细.csv"))
        text = zf.read(detail).decode("gbk")
    assert f"{uid}" in text and "交易" in text and "20.00" in text
    r = client.server_api(
        "alipay.data.dataservice.bill.downloadurl.query",
        {"bill_type": "trade", "bill_date": str(day - dt.timedelta(days=1))},
    )
    assert r["sub_code"] == "isp.bill_not_exist"


def test_bill_of_today_or_later_is_not_published(sandbox: SandboxHandle, uid: str) -> None:
    """Alipay's day bills are T+1: today's, like a later day's, does not exist yet."""
    client = make_client(sandbox)
    open_cashier(client, uid, total="3.00")
    sandbox.control(f"alipay/transactions/{uid}/pay", json={})  # paid today
    today = dt.datetime.now(dt.timezone(dt.timedelta(hours=8))).date()
    for day in (today, today + dt.timedelta(days=1)):
        r = client.server_api(
            "alipay.data.dataservice.bill.downloadurl.query", {"bill_type": "trade", "bill_date": str(day)}
        )
        assert r.get("sub_code") == "isp.bill_not_exist", r


def test_faults(sandbox: SandboxHandle, receiver: Receiver, uid: str) -> None:
    client = make_client(sandbox, notify_url=receiver.url + "/f")
    sandbox.fault("alipay.query", "bad_signature")
    with pytest.raises(AliPayValidationError):
        client.api_alipay_trade_query(out_trade_no=uid)
    sandbox.fault("alipay.query", "http_500")
    with pytest.raises(Exception, match="500"):
        client.api_alipay_trade_query(out_trade_no=uid)
    sandbox.fault("alipay.query", "malformed")
    with pytest.raises(ValueError):
        client.api_alipay_trade_query(out_trade_no=uid)
    client._config.timeout = 0.5
    sandbox.fault("alipay.query", "timeout", ms=1200)
    with pytest.raises(OSError):
        client.api_alipay_trade_query(out_trade_no=uid)
    sandbox.fault("alipay.notify", "drop")
    open_cashier(client, uid)
    sandbox.control(f"alipay/transactions/{uid}/pay", json={})
    assert sandbox.notifications(out_trade_no=uid)[0]["state"] == "dropped"


def test_expire_sends_trade_closed(sandbox: SandboxHandle, receiver: Receiver, uid: str) -> None:
    receiver.default = (200, b"success")
    client = make_client(sandbox, notify_url=receiver.url + "/exp")
    open_cashier(client, uid)
    sandbox.control(f"alipay/transactions/{uid}/expire", json={})
    got = sandbox.wait_for(lambda: receiver.received("/exp"))
    data = flat(got[0]["body"].decode())
    sign = data.pop("sign")
    assert client.verify(data, sign) and data["trade_status"] == "TRADE_CLOSED" and "gmt_payment" not in data
    assert client.api_alipay_trade_query(out_trade_no=uid)["trade_status"] == "TRADE_CLOSED"
    with pytest.raises(requests.HTTPError):
        sandbox.control(f"alipay/transactions/{uid}/pay", json={})
