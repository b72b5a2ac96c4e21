"""WeChat Pay v3 sandbox, exercised with the real wechatpayv3 SDK."""

from __future__ import annotations

import datetime as dt
import gzip
import hashlib
import json
import shutil
import time
from pathlib import Path
from typing import Any

import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from wechatpayv3 import WeChatPay, WeChatPayType
from wechatpayv3.type import RequestType

from sandbox import wechat_crypto as wc
from sandbox.testing import SandboxHandle

from .conftest import Receiver, key_text


def make_client(
    sandbox: SandboxHandle,
    tmp_path: Path,
    *,
    mode: str = "pubkey",
    private_key: str | None = None,
    kind: WeChatPayType = WeChatPayType.JSAPI,
    notify_url: str | None = None,
    timeout: Any = None,
) -> WeChatPay:
    c = sandbox.credentials["wechat"]
    kwargs: dict[str, Any] = {}
    if mode == "pubkey":
        kwargs = {
            "public_key": key_text(sandbox, "wechat/platform_public_key.pem"),
            "public_key_id": c["public_key_id"],
        }
    else:
        cert_dir = tmp_path / "certs"
        cert_dir.mkdir(exist_ok=True)
        shutil.copy(sandbox.path("wechat/platform_cert.pem"), cert_dir / f"{c['platform_serial_no']}.pem")
        kwargs = {"cert_dir": str(cert_dir)}
    client = WeChatPay(
        wechatpay_type=kind,
        mchid=c["mchid"],
        private_key=private_key or key_text(sandbox, "wechat/merchant_private_key.pem"),
        cert_serial_no=c["merchant_serial_no"],
        appid=c["appid"],
        apiv3_key=key_text(sandbox, "wechat/apiv3_key"),
        notify_url=notify_url or "http://127.0.0.1:9/notify/wechat",
        timeout=timeout,
        **kwargs,
    )
    client._core._gate_way = sandbox.base_url
    return client


@pytest.fixture
def wx(sandbox: SandboxHandle, tmp_path: Path) -> WeChatPay:
    return make_client(sandbox, tmp_path)


def jsapi(client: WeChatPay, no: str, total: int = 100, **kw: Any) -> tuple[int, Any]:
    return client.pay(
        description="柜子租用 locker",
        out_trade_no=no,
        amount={"total": total, "currency": "CNY"},
        payer={"openid": "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"},
        **kw,
    )


def body(result: tuple[int, Any]) -> dict[str, Any]:
    return json.loads(result[1]) if result[1] else {}


# ------------------------------------------------------------------------------ auth


def test_wrong_key_gets_401_sign_error(sandbox: SandboxHandle, tmp_path: Path, uid: str) -> None:
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = other.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    status, text = jsapi(make_client(sandbox, tmp_path, private_key=pem), uid)
    assert status == 401
    err = json.loads(text)
    assert err["code"] == "SIGN_ERROR"
    assert err["detail"]["detail"]["issue"] == "sign not match"


def test_tampered_body_and_missing_auth_are_401(sandbox: SandboxHandle, uid: str) -> None:
    c = sandbox.credentials["wechat"]
    priv = serialization.load_pem_private_key(sandbox.path("wechat/merchant_private_key.pem").read_bytes(), None)
    path = f"/v3/pay/transactions/out-trade-no/{uid}?mchid={c['mchid']}"
    auth = wc.build_authorization(
        priv, mchid=c["mchid"], serial_no=c["merchant_serial_no"], method="GET", path_with_query=path
    )
    ok = requests.get(sandbox.base_url + path, headers={"Authorization": auth})
    assert ok.status_code == 404 and ok.json()["code"] == "ORDER_NOT_EXIST"  # fields in official-SDK order
    tampered = requests.get(sandbox.base_url + path + "x", headers={"Authorization": auth})
    assert tampered.status_code == 401 and tampered.json()["code"] == "SIGN_ERROR"
    assert requests.get(sandbox.base_url + path).status_code == 401
    bad_serial = auth.replace(c["merchant_serial_no"], "1234ABCD")
    assert requests.get(sandbox.base_url + path, headers={"Authorization": bad_serial}).status_code == 401


# ------------------------------------------------------------------------------ prepay


def test_jsapi_prepay_idempotent_and_conflicts(wx: WeChatPay, uid: str) -> None:
    first = jsapi(wx, uid)
    assert first[0] == 200 and body(first)["prepay_id"].startswith("wx")
    assert body(jsapi(wx, uid)) == body(first)
    status, text = jsapi(wx, uid, total=101)
    assert status == 400 and json.loads(text)["code"] == "INVALID_REQUEST"


def test_native_and_h5_and_cashier_page(sandbox: SandboxHandle, tmp_path: Path, uid: str) -> None:
    native = make_client(sandbox, tmp_path, kind=WeChatPayType.NATIVE)
    status, text = native.pay(description="Native", out_trade_no=uid, amount={"total": 1})
    assert status == 200 and json.loads(text)["code_url"].startswith("weixin://wxpay/bizpayurl?pr=")
    page = requests.get(f"{sandbox.base_url}/cashier/wechat/{uid}")
    assert page.status_code == 200 and "<svg" in page.text and "确认支付" in page.text
    h5 = make_client(sandbox, tmp_path, kind=WeChatPayType.H5)
    status, text = h5.pay(
        description="H5",
        out_trade_no=uid + "H",
        amount={"total": 2},
        scene_info={"payer_client_ip": "1.2.3.4", "h5_info": {"type": "Wap"}},
    )
    h5_url = json.loads(text)["h5_url"]
    assert status == 200 and h5_url.startswith(f"{sandbox.base_url}/cashier/wechat/{uid}H")
    # H5 flow: pay in the cashier, then go back to the merchant
    resp = requests.post(
        f"{sandbox.base_url}/cashier/wechat/{uid}H/pay", data={"redirect": "https://m.example/r"}, allow_redirects=False
    )
    assert resp.status_code == 303 and resp.headers["Location"] == "https://m.example/r"
    assert body(h5.query(out_trade_no=uid + "H"))["trade_state"] == "SUCCESS"
    fail = requests.post(f"{sandbox.base_url}/cashier/wechat/{uid}/fail")
    assert fail.status_code == 200
    assert body(native.query(out_trade_no=uid))["trade_state"] == "PAYERROR"


@pytest.mark.parametrize(
    ("path", "data", "field"),
    [
        ("jsapi", {"payer": None}, "payer.openid"),
        ("jsapi", {"description": ""}, "description"),
        ("jsapi", {"description": "x" * 128}, "description"),
        ("jsapi", {"out_trade_no": "bad no!"}, "out_trade_no"),
        ("jsapi", {"notify_url": None}, "notify_url"),
        ("jsapi", {"amount": {"total": 0}}, "amount.total"),
        ("jsapi", {"amount": {"total": "1"}}, "amount.total"),
        ("h5", {"scene_info": {"payer_client_ip": "1.1.1.1"}}, "scene_info"),
    ],
)
def test_prepay_param_errors(wx: WeChatPay, uid: str, path: str, data: dict[str, Any], field: str) -> None:
    c = wx._core
    params: dict[str, Any] = {
        "appid": wx._appid,
        "mchid": wx._mchid,
        "description": "d",
        "out_trade_no": uid,
        "notify_url": "https://m.example/n",
        "amount": {"total": 1},
        "payer": {"openid": "o1"},
    }
    params.update(data)
    params = {k: v for k, v in params.items() if v is not None}
    status, text = c.request(f"/v3/pay/transactions/{path}", method=RequestType.POST, data=params)
    assert status == 400, text
    assert json.loads(text)["code"] == "PARAM_ERROR"


def test_appid_and_mchid_checks(wx: WeChatPay, uid: str) -> None:
    status, text = jsapi(wx, uid, appid="wx0000000000000000")
    assert status == 400 and json.loads(text)["code"] == "APPID_MCHID_NOT_MATCH"
    status, text = wx._core.request(f"/v3/pay/transactions/out-trade-no/{uid}")  # no ?mchid=
    assert status == 400 and json.loads(text)["code"] == "PARAM_ERROR"
    status, text = wx.query(out_trade_no=uid, mchid="1900000000")
    assert status == 400 and json.loads(text)["code"] == "PARAM_ERROR"


def test_error_answers_are_signed(wx: WeChatPay, uid: str, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[requests.Response] = []
    original = requests.get

    def spy(*args: Any, **kwargs: Any) -> requests.Response:
        seen.append(original(*args, **kwargs))
        return seen[-1]

    monkeypatch.setattr(requests, "get", spy)
    assert wx.query(out_trade_no=uid)[0] == 404
    assert wx._core._verify_signature(seen[0].headers, seen[0].text)


# ------------------------------------------------------------------------------ query / close


def test_query_lifecycle_and_fields(sandbox: SandboxHandle, wx: WeChatPay, uid: str) -> None:
    status, text = wx.query(out_trade_no=uid)
    assert status == 404 and json.loads(text)["code"] == "ORDER_NOT_EXIST"
    jsapi(wx, uid, total=250, attach="a1")
    q = body(wx.query(out_trade_no=uid))
    assert q["trade_state"] == "NOTPAY" and q["amount"]["total"] == 250 and "transaction_id" not in q
    sandbox.control(f"wechat/transactions/{uid}/pay", json={})
    q = body(wx.query(out_trade_no=uid))
    assert q["trade_state"] == "SUCCESS" and q["trade_state_desc"] == "支付成功"
    for key in (
        "appid",
        "mchid",
        "out_trade_no",
        "transaction_id",
        "trade_type",
        "bank_type",
        "attach",
        "success_time",
        "payer",
    ):
        assert key in q, key
    assert q["trade_type"] == "JSAPI" and q["attach"] == "a1" and q["success_time"].endswith("+08:00")
    assert q["amount"] == {"total": 250, "payer_total": 250, "currency": "CNY", "payer_currency": "CNY"}
    assert body(wx.query(transaction_id=q["transaction_id"]))["out_trade_no"] == uid
    status, text = jsapi(wx, uid, total=250, attach="a1")
    assert status == 400 and json.loads(text)["code"] == "ORDERPAID"
    status, text = wx.close(uid)
    assert status == 400 and json.loads(text)["code"] == "ORDERPAID"


def test_close(wx: WeChatPay, uid: str) -> None:
    assert wx.close("NOPE" + uid)[0] == 404
    jsapi(wx, uid)
    status, text = wx.close(uid)  # 204, empty body, signature verified by the SDK
    assert status == 204 and text == ""
    assert wx.close(uid)[0] == 204
    assert body(wx.query(out_trade_no=uid))["trade_state"] == "CLOSED"
    status, text = jsapi(wx, uid)
    assert status == 400 and json.loads(text)["code"] == "ORDER_CLOSED"


# ------------------------------------------------------------------------------ refunds


def test_refund_flow(sandbox: SandboxHandle, wx: WeChatPay, uid: str, receiver: Receiver) -> None:
    jsapi(wx, uid, total=300)
    status, text = wx.refund(
        out_refund_no="R" + uid, amount={"refund": 100, "total": 300, "currency": "CNY"}, out_trade_no=uid
    )
    assert status == 400 and json.loads(text)["code"] == "INVALID_REQUEST"  # not paid
    assert (
        wx.refund(
            out_refund_no="R" + uid, amount={"refund": 1, "total": 1, "currency": "CNY"}, out_trade_no="NONE" + uid
        )[0]
        == 404
    )
    sandbox.control(f"wechat/transactions/{uid}/pay", json={})
    status, text = wx.refund(
        out_refund_no="R1" + uid,
        amount={"refund": 100, "total": 300, "currency": "CNY"},
        out_trade_no=uid,
        notify_url=receiver.url + "/refund",
    )
    r1 = json.loads(text)
    assert status == 200 and r1["status"] == "PROCESSING" and r1["amount"]["refund"] == 100
    for key in (
        "refund_id",
        "out_refund_no",
        "transaction_id",
        "out_trade_no",
        "channel",
        "user_received_account",
        "create_time",
        "funds_account",
    ):
        assert key in r1
    assert (
        body(
            wx.refund(
                out_refund_no="R1" + uid, amount={"refund": 100, "total": 300, "currency": "CNY"}, out_trade_no=uid
            )
        )
        == r1
    )
    status, text = wx.refund(
        out_refund_no="R2" + uid, amount={"refund": 201, "total": 300, "currency": "CNY"}, out_trade_no=uid
    )
    assert status == 403 and json.loads(text)["code"] == "NOT_ENOUGH"
    status, text = wx.refund(
        out_refund_no="R3" + uid, amount={"refund": 1, "total": 299, "currency": "CNY"}, out_trade_no=uid
    )
    assert status == 400 and json.loads(text)["code"] == "INVALID_REQUEST"
    assert body(wx.query(out_trade_no=uid))["trade_state"] == "REFUND"
    status, text = wx.query_refund("NONE" + uid)
    assert status == 404 and json.loads(text)["code"] == "RESOURCE_NOT_EXISTS"
    assert body(wx.query_refund("R1" + uid))["status"] == "PROCESSING"
    sandbox.control(f"wechat/refunds/R1{uid}/settle", json={"status": "SUCCESS"})
    q = body(wx.query_refund("R1" + uid))
    assert q["status"] == "SUCCESS" and q["success_time"].endswith("+08:00")
    got = sandbox.wait_for(lambda: receiver.received("/refund"))
    data = wx.callback(got[0]["headers"], got[0]["body"])
    assert data["event_type"] == "REFUND.SUCCESS"
    assert data["resource"]["refund_status"] == "SUCCESS" and data["resource"]["out_refund_no"] == "R1" + uid
    assert data["resource"]["amount"] == {"total": 300, "refund": 100, "payer_total": 300, "payer_refund": 100}
    # ABNORMAL / CLOSED
    wx.refund(
        out_refund_no="R4" + uid,
        amount={"refund": 50, "total": 300, "currency": "CNY"},
        out_trade_no=uid,
        notify_url=receiver.url + "/refund4",
    )
    sandbox.control(f"wechat/refunds/R4{uid}/settle", json={"status": "ABNORMAL"})
    sandbox.control(f"wechat/refunds/R4{uid}/settle", json={"status": "CLOSED"})
    got = sandbox.wait_for(lambda: len(receiver.received("/refund4")) >= 2 and receiver.received("/refund4"))
    events = sorted(wx.callback(g["headers"], g["body"])["event_type"] for g in got)
    assert events == ["REFUND.ABNORMAL", "REFUND.CLOSED"]


# ------------------------------------------------------------------------------ modes / certificates


def test_certificate_mode_responses_and_notifications(
    sandbox: SandboxHandle, tmp_path: Path, uid: str, receiver: Receiver
) -> None:
    wx = make_client(sandbox, tmp_path, mode="cert", notify_url=receiver.url + "/cert")
    assert body(jsapi(wx, uid))["prepay_id"]
    q = body(wx.query(out_trade_no=uid))  # signature verified with the cert
    assert q["trade_state"] == "NOTPAY"
    sandbox.control(f"wechat/transactions/{uid}/pay", json={})
    got = sandbox.wait_for(lambda: receiver.received("/cert"))
    assert got[0]["headers"]["Wechatpay-Serial"] == sandbox.credentials["wechat"]["platform_serial_no"]
    data = wx.callback(got[0]["headers"], got[0]["body"])
    assert data["resource"]["trade_state"] == "SUCCESS" and data["resource_type"] == "encrypt-resource"


def test_certificates_download(sandbox: SandboxHandle, tmp_path: Path) -> None:
    wx = make_client(sandbox, tmp_path, mode="cert")
    empty = tmp_path / "fresh"
    wx._core._cert_dir = str(empty) + "/"
    wx._core._certificates.clear()
    wx._core._update_certificates()
    serial = sandbox.credentials["wechat"]["platform_serial_no"]
    assert len(wx._core._certificates) == 1 and format(wx._core._certificates[0].serial_number, "X") == serial
    assert (empty / f"{serial}.pem").read_text() == sandbox.read("wechat/platform_cert.pem")


def test_pubkey_mode_notification_and_retries(
    sandbox: SandboxHandle, wx: WeChatPay, uid: str, receiver: Receiver
) -> None:
    receiver.replies = [(500, b'{"code":"FAIL"}'), (400, b"")]
    jsapi(wx, uid, notify_url=receiver.url + "/pk")
    sandbox.control(f"wechat/transactions/{uid}/pay", json={"openid": "oTEST"})
    got = sandbox.wait_for(lambda: len(receiver.received("/pk")) >= 3 and receiver.received("/pk"))
    assert got[0]["headers"]["Wechatpay-Serial"] == sandbox.credentials["wechat"]["public_key_id"]
    assert got[0]["headers"]["Wechatpay-Signature-Type"] == "WECHATPAY2-SHA256-RSA2048"
    ids = {json.loads(g["body"])["id"] for g in got}
    assert len(ids) == 1
    data = wx.callback(got[2]["headers"], got[2]["body"])
    assert data["event_type"] == "TRANSACTION.SUCCESS" and data["resource"]["payer"]["openid"] == "oTEST"
    n = sandbox.wait_for(lambda: [d for d in sandbox.notifications(out_trade_no=uid) if d["state"] == "delivered"])
    assert [a["status"] for a in n[0]["attempts"]] == [500, 400, 204]


def test_pure_notification_builder(sandbox: SandboxHandle, wx: WeChatPay) -> None:
    priv = serialization.load_pem_private_key(sandbox.path("wechat/platform_private_key.pem").read_bytes(), None)
    tx = {"out_trade_no": "X1", "trade_state": "SUCCESS", "amount": {"total": 1}}
    headers, raw = wc.build_transaction_notification(
        tx,
        apiv3_key=sandbox.read("wechat/apiv3_key"),
        private_key=priv,
        serial=sandbox.credentials["wechat"]["public_key_id"],
    )
    assert wx.callback(headers, raw)["resource"] == tx
    headers, raw = wc.build_transaction_notification(
        tx,
        apiv3_key=sandbox.read("wechat/apiv3_key"),
        private_key=priv,
        serial=sandbox.credentials["wechat"]["public_key_id"],
        bad_signature=True,
    )
    assert wx.callback(headers, raw) is None


# ------------------------------------------------------------------------------ bills


def test_trade_bill(sandbox: SandboxHandle, wx: WeChatPay, uid: str) -> None:
    day = dt.date(2024, 3, 9) + dt.timedelta(days=int(uid[:4], 16) % 300)  # a day only this test uses
    jsapi(wx, uid, total=1234)
    sandbox.control(f"wechat/transactions/{uid}/pay", json={"success_time": f"{day}T10:11:12+08:00"})
    wx.refund(out_refund_no="RB" + uid, amount={"refund": 234, "total": 1234, "currency": "CNY"}, out_trade_no=uid)
    sandbox.control(
        f"wechat/refunds/RB{uid}/settle", json={"status": "SUCCESS", "success_time": f"{day}T23:59:59+08:00"}
    )
    status, text = wx.trade_bill(bill_date=str(day - dt.timedelta(days=1)))
    assert status == 400 and json.loads(text)["code"] == "NO_STATEMENT_EXIST"
    status, text = wx.trade_bill(bill_date=str(day))
    info = json.loads(text)
    assert status == 200 and info["hash_type"] == "SHA1"
    status, raw = wx.download_bill(info["download_url"])
    assert status == 200 and isinstance(raw, bytes)
    csv_bytes = gzip.decompress(raw)
    assert hashlib.sha1(csv_bytes).hexdigest() == info["hash_value"]
    lines = csv_bytes.decode().splitlines()
    assert lines[0].startswith("交易时间,公众账号ID,商户号")
    assert lines[1].startswith(f"`{day} 10:11:12,") and f"`{uid}," in lines[1] and "`12.34" in lines[1]
    assert "`REFUND" in lines[2] and "`2.34" in lines[2]
    assert lines[3].startswith("总交易单数") and lines[4].startswith("`2,`12.34,`2.34")


def test_trade_bill_of_today_or_later_is_not_published(sandbox: SandboxHandle, wx: WeChatPay, uid: str) -> None:
    """WeChat publishes a day's bill after 10:00 the next day: today's, like a later day's, is refused."""
    jsapi(wx, uid, total=100)
    sandbox.control(f"wechat/transactions/{uid}/pay", json={})  # paid today
    today = dt.datetime.now(dt.timezone(dt.timedelta(hours=8))).date()
    for day in (today, today + dt.timedelta(days=1)):
        status, text = wx.trade_bill(bill_date=str(day))
        assert status == 400 and json.loads(text)["code"] == "INVALID_REQUEST", text


# ------------------------------------------------------------------------------ faults


def test_api_faults(sandbox: SandboxHandle, tmp_path: Path, uid: str) -> None:
    wx = make_client(sandbox, tmp_path, timeout=(2, 0.5))
    sandbox.fault("wechat.pay", "http_500")
    status, text = jsapi(wx, uid)
    assert status == 500 and json.loads(text)["code"] == "SYSTEM_ERROR"
    sandbox.fault("wechat.query", "bad_signature")
    jsapi(wx, uid)
    with pytest.raises(Exception, match="failed to verify the signature"):
        wx.query(out_trade_no=uid)
    sandbox.fault("wechat.query", "malformed")
    status, text = wx.query(out_trade_no=uid)
    assert status == 200
    with pytest.raises(ValueError):
        json.loads(text)
    sandbox.fault("wechat.query", "timeout", ms=1500)
    with pytest.raises(requests.exceptions.ReadTimeout):
        wx.query(out_trade_no=uid)
    sandbox.fault("wechat.close", "timeout", ms=800, apply=True)  # applied, answer lost
    with pytest.raises(requests.exceptions.ReadTimeout):
        wx.close(uid)
    assert body(wx.query(out_trade_no=uid))["trade_state"] == "CLOSED"
    sandbox.fault("wechat.query", "latency", ms=300)
    started = time.monotonic()
    assert wx.query(out_trade_no=uid)[0] == 200
    assert time.monotonic() - started >= 0.3
    assert wx.query(out_trade_no=uid)[0] == 200  # count consumed


def test_notify_faults(sandbox: SandboxHandle, wx: WeChatPay, uid: str, receiver: Receiver) -> None:
    url = receiver.url + "/f"
    sandbox.fault("wechat.notify", "drop")
    jsapi(wx, uid + "A", notify_url=url)
    sandbox.control(f"wechat/transactions/{uid}A/pay", json={})
    assert sandbox.notifications(out_trade_no=uid + "A")[0]["state"] == "dropped"

    sandbox.fault("wechat.notify", "duplicate")
    jsapi(wx, uid + "B", notify_url=url + "B")
    sandbox.control(f"wechat/transactions/{uid}B/pay", json={})
    got = sandbox.wait_for(lambda: len(receiver.received("/fB")) >= 2 and receiver.received("/fB"))
    assert json.loads(got[0]["body"])["id"] == json.loads(got[1]["body"])["id"]

    sandbox.fault("wechat.notify", "reorder", ms=5000)
    jsapi(wx, uid + "C", notify_url=url + "C")
    jsapi(wx, uid + "D", notify_url=url + "D")
    sandbox.control(f"wechat/transactions/{uid}C/pay", json={})
    sandbox.control(f"wechat/transactions/{uid}D/pay", json={})
    sandbox.wait_for(lambda: len(receiver.received("/fC")) == 1)
    order = [r["path"] for r in receiver.received() if r["path"] in ("/fC", "/fD")]
    assert order == ["/fD", "/fC"]

    # bad signature: receiver verifies with the SDK and answers 401 -> WeChat retries with a good one
    sandbox.fault("wechat.notify", "bad_signature")
    receiver.replies = [(401, b"")]
    jsapi(wx, uid + "E", notify_url=url + "E")
    sandbox.control(f"wechat/transactions/{uid}E/pay", json={})
    got = sandbox.wait_for(lambda: len(receiver.received("/fE")) >= 2 and receiver.received("/fE"))
    assert wx.callback(got[0]["headers"], got[0]["body"]) is None
    assert wx.callback(got[1]["headers"], got[1]["body"])["resource"]["out_trade_no"] == uid + "E"


def test_fault_validation(sandbox: SandboxHandle) -> None:
    with pytest.raises(requests.HTTPError):
        sandbox.fault("wechat.pay", "drop")
    with pytest.raises(requests.HTTPError):
        sandbox.fault("wechat.notify", "http_500")
    listed = sandbox.fault("wechat.*", "latency", count=-1, ms=1)
    assert listed["added"][0]["count"] == -1


def test_concurrent_prepay_creates_one_trade(sandbox: SandboxHandle, wx: WeChatPay, uid: str) -> None:
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(lambda _: jsapi(wx, uid), range(16)))
    assert {r[0] for r in results} == {200}
    assert len({body(r)["prepay_id"] for r in results}) == 1
    assert len(sandbox.control("wechat/transactions", state="NOTPAY")["transactions"]) >= 1


def test_keep_alive_session(sandbox: SandboxHandle, uid: str) -> None:
    c = sandbox.credentials["wechat"]
    priv = serialization.load_pem_private_key(sandbox.path("wechat/merchant_private_key.pem").read_bytes(), None)
    path = f"/v3/pay/transactions/out-trade-no/{uid}?mchid={c['mchid']}"
    with requests.Session() as s:
        for _ in range(20):
            auth = wc.build_authorization(
                priv, mchid=c["mchid"], serial_no=c["merchant_serial_no"], method="GET", path_with_query=path
            )
            resp = s.get(sandbox.base_url + path, headers={"Authorization": auth})
            assert resp.status_code == 404
            assert resp.headers.get("Connection", "").lower() != "close"


def test_certificates_fault_and_notify_latency(
    sandbox: SandboxHandle, tmp_path: Path, uid: str, receiver: Receiver
) -> None:
    wx = make_client(sandbox, tmp_path, mode="cert")
    sandbox.fault("wechat.certificates", "http_500")
    wx._core._certificates.clear()
    wx._core._update_certificates()
    assert wx._core._certificates == []  # the SDK silently keeps none on a 500
    jsapi(wx, uid, notify_url=receiver.url + "/lat")
    sandbox.fault("wechat.notify", "latency", ms=400)
    started = time.monotonic()
    sandbox.control(f"wechat/transactions/{uid}/pay", json={})
    sandbox.wait_for(lambda: receiver.received("/lat"))
    assert time.monotonic() - started >= 0.4


def test_control_expire(sandbox: SandboxHandle, wx: WeChatPay, uid: str) -> None:
    jsapi(wx, uid)
    assert sandbox.control(f"wechat/transactions/{uid}/expire", json={})["state"] == "CLOSED"
    assert body(wx.query(out_trade_no=uid))["trade_state"] == "CLOSED"
    with pytest.raises(requests.HTTPError):
        sandbox.control(f"wechat/transactions/{uid}/expire", json={})


@pytest.mark.parametrize("mode", ["pubkey", "cert"])
def test_apply_abnormal_refund(sandbox: SandboxHandle, tmp_path: Path, uid: str, receiver: Receiver, mode: str) -> None:
    """PROTOCOLS F.2: only an ABNORMAL refund; USER_BANK_CARD needs the encrypted bank fields; the answer is the
    refund object, which settles SUCCESS later with REFUND.SUCCESS. The account is never kept in full."""
    wx = make_client(sandbox, tmp_path, mode=mode)
    jsapi(wx, uid, total=300)
    sandbox.control(f"wechat/transactions/{uid}/pay", json={})
    refund = body(
        wx.refund(
            out_refund_no="R" + uid,
            amount={"refund": 300, "total": 300, "currency": "CNY"},
            out_trade_no=uid,
            notify_url=receiver.url + "/refund",
        )
    )
    card = {"bank_type": "ICBC_DEBIT", "bank_account": "6222021234567890123", "real_name": "张三"}
    early = wx.abnormal_refund(refund["refund_id"], "R" + uid, "USER_BANK_CARD", **card)
    assert early[0] == 400 and json.loads(early[1])["code"] == "INVALID_REQUEST"  # still PROCESSING
    sandbox.control(f"wechat/refunds/R{uid}/settle", json={"status": "ABNORMAL"})

    missing = wx.abnormal_refund(refund["refund_id"], "R" + uid, "USER_BANK_CARD", bank_type="ICBC_DEBIT")
    assert missing[0] == 400 and json.loads(missing[1])["code"] == "PARAM_ERROR"
    applied = wx.abnormal_refund(refund["refund_id"], "R" + uid, "USER_BANK_CARD", **card)
    answer = body(applied)
    assert applied[0] == 200 and answer["status"] == "PROCESSING" and answer["channel"] == "OTHER_BANKCARD"
    assert answer["out_refund_no"] == "R" + uid and answer["amount"]["refund"] == 300
    assert answer["user_received_account"] == "ICBC_DEBIT ****0123"
    assert body(wx.abnormal_refund(refund["refund_id"], "R" + uid, "USER_BANK_CARD", **card)) == answer  # again

    sandbox.control(f"wechat/refunds/R{uid}/settle", json={"status": "SUCCESS"})
    notified = sandbox.wait_for(lambda: [r for r in receiver.received("/refund")], timeout=10)
    assert notified
    stored = json.dumps(sandbox.control(f"wechat/refunds/R{uid}"), ensure_ascii=False)
    assert "6222021234567890123" not in stored and "张三" not in stored


def test_apply_abnormal_refund_to_the_merchant_account(sandbox: SandboxHandle, wx: WeChatPay, uid: str) -> None:
    jsapi(wx, uid, total=200)
    sandbox.control(f"wechat/transactions/{uid}/pay", json={})
    refund = body(
        wx.refund(out_refund_no="R" + uid, amount={"refund": 50, "total": 200, "currency": "CNY"}, out_trade_no=uid)
    )
    sandbox.control(f"wechat/refunds/R{uid}/settle", json={"status": "ABNORMAL"})

    answer = body(wx.abnormal_refund(refund["refund_id"], "R" + uid, "MERCHANT_BANK_CARD"))

    assert answer["status"] == "PROCESSING" and answer["channel"] == "OTHER_BALANCE"
    unknown = wx.abnormal_refund("5000000000000", "R" + uid, "MERCHANT_BANK_CARD")
    assert unknown[0] == 404 and json.loads(unknown[1])["code"] == "RESOURCE_NOT_EXISTS"
