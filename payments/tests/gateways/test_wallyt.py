"""Wallyt: MD5 known answer, hostile XML, and the adapter over HTTP against a local signing stub."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime

import pytest

from core.errors import (
    ChannelNotConfigured,
    GatewayRejected,
    GatewayUnavailable,
    NotificationInvalid,
    SignatureInvalid,
    TradeAlreadyPaid,
    TradeNotFound,
)
from payments.gateways.base import PrepayRequest, RefundRequest, RefundState, TradeState
from payments.gateways.trust import FieldMismatch, check_trade, trade_expectations
from payments.gateways.wallyt import (
    MAX_XML_BYTES,
    WallytConfig,
    WallytGateway,
    WallytXmlError,
    md5_sign,
    md5_verify,
    xml_dumps,
    xml_loads,
)

from .stub_http import StubRequest, StubResponse, stub_server, unused_port_url

KEY = "192006250b4c09247ec02edce69f6a2d"
MCH_ID = "105550000001"
MINI_APPID = "wx1234567890abcdef"


def test_md5_known_answer_from_wechat_v2_docs() -> None:
    params = {
        "appid": "wxd930ea5d5a258f4f",
        "mch_id": "10000100",
        "device_info": "1000",
        "body": "test",
        "nonce_str": "ibuaiVcKdpRxkhJA",
    }

    assert md5_sign(params, key=KEY) == "9A0A8659F005D6984697E2CA0A9CF3B7"


def test_md5_ignores_sign_and_empty_values_and_compares_case_insensitively() -> None:
    params = {
        "appid": "wxd930ea5d5a258f4f",
        "mch_id": "10000100",
        "device_info": "1000",
        "body": "test",
        "nonce_str": "ibuaiVcKdpRxkhJA",
        "attach": "",
        "sign": "9a0a8659f005d6984697e2ca0a9cf3b7",
    }

    assert md5_verify(params, key=KEY)
    assert not md5_verify({**params, "body": "test2"}, key=KEY)
    assert not md5_verify({**params, "sign": ""}, key=KEY)
    assert not md5_verify({**params, "sign": "\uff19A0A"}, key=KEY)


BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
]>
<xml><status>&lol3;</status></xml>"""
EXTERNAL_ENTITY = b"""<?xml version="1.0"?>
<!DOCTYPE xml [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<xml><status>&xxe;</status></xml>"""
EXTERNAL_DTD = (
    b"""<?xml version="1.0"?><!DOCTYPE xml SYSTEM "http://127.0.0.1:9/evil.dtd"><xml><status>0</status></xml>"""
)
INTERNAL_DTD = b"""<!DOCTYPE xml [<!ELEMENT xml ANY>]><xml><status>0</status></xml>"""
PARAMETER_ENTITY = b"""<!DOCTYPE xml [<!ENTITY % p SYSTEM "http://127.0.0.1:9/p.dtd"> %p;]><xml/>"""


@pytest.mark.parametrize(
    "body",
    [
        BILLION_LAUGHS,
        EXTERNAL_ENTITY,
        EXTERNAL_DTD,
        INTERNAL_DTD,
        PARAMETER_ENTITY,
        b"",
        b"not xml",
        b"<xml><status>0</status>",
        b"<xml><status>0</xml>",
        b"<xml><a><b>1</b></a></xml>",
        b'<xml><a x="1">1</a></xml>',
        b'<xml lang="en"><a>1</a></xml>',
        b"<root><a>1</a></root>",
        b"<xml><a>1</a><a>2</a></xml>",
        b"<xml>stray<a>1</a></xml>",
        b"<xml><a>1</a>stray</xml>",
        b"<xml><a>" + b"x" * MAX_XML_BYTES + b"</a></xml>",
    ],
    ids=[
        "billion-laughs",
        "external-entity",
        "external-dtd",
        "internal-dtd",
        "parameter-entity",
        "empty",
        "text",
        "unclosed",
        "mismatched",
        "nested",
        "attribute",
        "root-attribute",
        "wrong-root",
        "repeated",
        "stray-text",
        "stray-tail",
        "oversize",
    ],
)
def test_hostile_or_malformed_xml_is_rejected(body: bytes) -> None:
    with pytest.raises(WallytXmlError):
        xml_loads(body)


def test_flat_xml_with_cdata_round_trips() -> None:
    body = b"<xml><status><![CDATA[0]]></status><message><![CDATA[a<b & c]]></message><empty></empty></xml>"

    assert xml_loads(body) == {"status": "0", "message": "a<b & c", "empty": ""}
    assert xml_loads(xml_dumps({"body": "柜子 <12> & co"})) == {"body": "柜子 <12> & co"}


# --------------------------------------------------------------------------- over HTTP

Answer = Callable[[dict[str, str]], dict[str, str] | StubResponse]


def signed_xml(fields: dict[str, str], *, key: str = KEY) -> bytes:
    params = {"version": "2.0", "charset": "UTF-8", "sign_type": "MD5", "mch_id": MCH_ID, "nonce_str": "n1", **fields}
    params["sign"] = md5_sign(params, key=key)
    return ("<xml>" + "".join(f"<{k}><![CDATA[{v}]]></{k}>" for k, v in params.items()) + "</xml>").encode()


def handler(answer: Answer) -> Callable[[StubRequest], StubResponse]:
    def handle(request: StubRequest) -> StubResponse:
        params = xml_loads(request.body)
        assert md5_verify(params, key=KEY), "the adapter's request signature must verify"
        result = answer(params)
        if isinstance(result, StubResponse):
            return result
        return StubResponse(200, signed_xml(result), {"Content-Type": "text/xml"})

    return handle


def gateway_for(url: str) -> WallytGateway:
    return WallytGateway(
        WallytConfig(
            api_url=url,
            mch_id=MCH_ID,
            secret_key=KEY,
            notify_url="https://merchant.example/notify/wallyt/",
            mini_appid=MINI_APPID,
            timeout=(2, 2),
        )
    )


def ok(**fields: str) -> dict[str, str]:
    return {"status": "0", "result_code": "0", **fields}


def failed(err_code: str) -> dict[str, str]:
    return {"status": "0", "result_code": "1", "err_code": err_code, "err_msg": err_code.lower()}


PAY_INFO = {
    "appId": MINI_APPID,
    "timeStamp": "1700000000",
    "nonceStr": "abc",
    "package": "prepay_id=wx1",
    "signType": "RSA",
    "paySign": "sig",
}


def test_create_jspay_sends_the_documented_fields_and_returns_pay_params() -> None:
    with stub_server(handler(lambda p: ok(token_id="t1", pay_info=json.dumps(PAY_INFO)))) as stub:
        result = gateway_for(f"{stub.base_url}/pay/gateway").create(
            PrepayRequest(
                payment_no="P1",
                amount_fen=1234,
                description="locker 12",
                product="jsapi",
                expires_at=datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC),
                notify_url="",
                openid="oUser",
                client_ip="203.0.113.9",
            )
        )

    sent = xml_loads(stub.requests[0].body)
    assert stub.requests[0].path == "/pay/gateway"
    assert {
        k: sent[k] for k in ("service", "mch_id", "total_fee", "sub_openid", "sub_appid", "is_raw", "is_minipg")
    } == {
        "service": "pay.weixin.jspay",
        "mch_id": MCH_ID,
        "total_fee": "1234",
        "sub_openid": "oUser",
        "sub_appid": MINI_APPID,
        "is_raw": "1",
        "is_minipg": "1",
    }
    assert sent["time_expire"] == "20300102110405" and sent["mch_create_ip"] == "203.0.113.9"
    assert sent["notify_url"] == "https://merchant.example/notify/wallyt/"
    assert result.pay_params == PAY_INFO


@pytest.mark.parametrize(
    ("state", "expected"),
    [
        ("NOTPAY", TradeState.PENDING),
        ("USERPAYING", TradeState.PENDING),
        ("SUCCESS", TradeState.SUCCEEDED),
        ("REFUND", TradeState.SUCCEEDED),
        ("CLOSED", TradeState.CLOSED),
        ("REVOK", TradeState.CLOSED),
        ("PAYERROR", TradeState.FAILED),
    ],
)
def test_query_maps_trade_state(state: str, expected: TradeState) -> None:
    answer = ok(trade_state=state, out_trade_no="P1", total_fee="1234", transaction_id="W1", time_end="20300102110405")
    with stub_server(handler(lambda p: answer)) as stub:
        trade = gateway_for(stub.base_url).query("P1")

    assert (trade.state, trade.amount_fen, trade.gateway_trade_no, trade.merchant_id) == (expected, 1234, "W1", MCH_ID)
    assert trade.paid_at == datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)


@pytest.mark.parametrize(
    ("answer", "error_type"),
    [
        (lambda p: failed("ORDERNOTEXIST"), TradeNotFound),
        (lambda p: failed("SOME_BUSINESS_RULE"), GatewayRejected),
        (lambda p: failed("SYSTEMERROR"), GatewayUnavailable),
        (
            lambda p: StubResponse(200, b"<xml><status>400</status><message>sign error</message></xml>"),
            GatewayUnavailable,
        ),
        (lambda p: StubResponse(200, signed_xml(ok(trade_state="SUCCESS"), key="wrong")), GatewayUnavailable),
        (lambda p: StubResponse(200, b"<xml><status>0</status><result_code>0</result_code></xml>"), GatewayUnavailable),
        (lambda p: StubResponse(502, b"bad gateway"), GatewayUnavailable),
        (lambda p: StubResponse(200, b"<html><body>hi</body></html>"), GatewayUnavailable),
        (lambda p: StubResponse(200, BILLION_LAUGHS), GatewayUnavailable),
        (lambda p: StubResponse(200, b"<xml><a>" + b"x" * (MAX_XML_BYTES + 10) + b"</a></xml>"), GatewayUnavailable),
        (lambda p: ok(trade_state="SOMETHING_NEW"), GatewayUnavailable),
    ],
    ids=[
        "not-exist",
        "business",
        "systemerror",
        "status-400",
        "bad-sign",
        "unsigned",
        "http-502",
        "html",
        "bomb",
        "oversize",
        "unknown-state",
    ],
)
def test_query_errors(answer: Answer, error_type: type[Exception]) -> None:
    with stub_server(handler(answer)) as stub, pytest.raises(error_type) as caught:
        gateway_for(stub.base_url).query("P1")

    assert type(caught.value) is error_type


def test_connection_refused_is_unavailable() -> None:
    with pytest.raises(GatewayUnavailable):
        gateway_for(unused_port_url()).query("P1")


@pytest.mark.parametrize(("trade_state", "raises"), [("SUCCESS", TradeAlreadyPaid), ("CLOSED", None)])
def test_close_failure_asks_query(trade_state: str, raises: type[Exception] | None) -> None:
    def answer(params: dict[str, str]) -> dict[str, str]:
        if params["service"] == "unified.trade.close":
            return failed("ORDERSTATUSERROR")
        return ok(trade_state=trade_state, out_trade_no="P1", total_fee="100")

    with stub_server(handler(answer)) as stub:
        gateway = gateway_for(stub.base_url)
        if raises is None:
            gateway.close("P1")
        else:
            with pytest.raises(raises):
                gateway.close("P1")


def test_close_ok() -> None:
    with stub_server(handler(lambda p: ok())) as stub:
        gateway_for(stub.base_url).close("P1")

    assert xml_loads(stub.requests[0].body)["service"] == "unified.trade.close"


def test_refund_is_accepted_as_processing() -> None:
    with stub_server(handler(lambda p: ok(refund_id="RF1", out_refund_no="R1", refund_fee="1000"))) as stub:
        status = gateway_for(stub.base_url).refund(
            RefundRequest(
                refund_no="R1", payment_no="P1", gateway_trade_no=None, refund_fen=1000, total_fen=1234, reason="x"
            )
        )

    sent = xml_loads(stub.requests[0].body)
    assert (sent["service"], sent["out_refund_no"], sent["op_user_id"]) == ("unified.trade.refund", "R1", MCH_ID)
    assert (sent["total_fee"], sent["refund_fee"]) == ("1234", "1000")
    assert (status.state, status.gateway_refund_id, status.amount_fen) == (RefundState.PROCESSING, "RF1", 1000)


@pytest.mark.parametrize(
    ("refund_status", "expected"),
    [
        ("SUCCESS", RefundState.SUCCEEDED),
        ("FAIL", RefundState.FAILED),
        ("PROCESSING", RefundState.PROCESSING),
        ("NOTSURE", RefundState.PROCESSING),
        ("CHANGE", RefundState.ABNORMAL),
    ],
)
def test_refund_query_maps_indexed_status(refund_status: str, expected: RefundState) -> None:
    answer = ok(
        out_trade_no="P1",
        refund_count="2",
        out_refund_no_0="R0",
        refund_status_0="SUCCESS",
        refund_fee_0="1",
        out_refund_no_1="R1",
        refund_id_1="RF1",
        refund_fee_1="1000",
        refund_status_1=refund_status,
        refund_time_1="20300102110405",
    )
    with stub_server(handler(lambda p: answer)) as stub:
        status = gateway_for(stub.base_url).query_refund("R1", payment_no="P1")

    assert xml_loads(stub.requests[0].body)["service"] == "unified.trade.refundquery"
    assert (status.state, status.amount_fen, status.gateway_refund_id, status.gateway_state) == (
        expected,
        1000,
        "RF1",
        refund_status,
    )


# --------------------------------------------------------------------------- notifications

NOTIFY = {
    "status": "0",
    "result_code": "0",
    "pay_result": "0",
    "trade_type": "pay.weixin.jspay",
    "transaction_id": "755000000001",
    "out_transaction_id": "4200000000001",
    "out_trade_no": "P1",
    "total_fee": "1234",
    "sub_appid": MINI_APPID,
    "time_end": "20300102110405",
}


def test_notification_paid() -> None:
    parsed = gateway_for("http://127.0.0.1:9").parse_notification({}, signed_xml(NOTIFY))

    assert (parsed.event_id, parsed.event_type) == ("755000000001", "pay.weixin.jspay")
    assert parsed.trade is not None
    trade = parsed.trade
    assert (trade.payment_no, trade.state, trade.amount_fen, trade.merchant_id) == (
        "P1",
        TradeState.SUCCEEDED,
        1234,
        MCH_ID,
    )


def test_notification_not_paid_is_failed_with_its_own_event_id() -> None:
    parsed = gateway_for("http://127.0.0.1:9").parse_notification({}, signed_xml({**NOTIFY, "pay_result": "1"}))

    assert parsed.trade is not None and parsed.trade.state is TradeState.FAILED
    assert parsed.event_id != "755000000001"


def test_notification_lower_case_sign_is_accepted() -> None:
    body = signed_xml(NOTIFY)
    params = xml_loads(body)
    lowered = xml_dumps({**params, "sign": params["sign"].lower()})

    assert gateway_for("http://127.0.0.1:9").parse_notification({}, lowered).trade is not None


@pytest.mark.parametrize(
    ("body", "error_type"),
    [
        (signed_xml(NOTIFY, key="wrong"), SignatureInvalid),
        (signed_xml(NOTIFY).replace(b"1234", b"1235"), SignatureInvalid),
        (signed_xml({**NOTIFY, "status": "1"}), NotificationInvalid),
        (signed_xml({**NOTIFY, "result_code": "1"}), NotificationInvalid),
        (BILLION_LAUGHS, NotificationInvalid),
        (EXTERNAL_ENTITY, NotificationInvalid),
    ],
    ids=["wrong-key", "tampered", "status", "result-code", "bomb", "xxe"],
)
def test_notification_rejections(body: bytes, error_type: type[Exception]) -> None:
    with pytest.raises(error_type):
        gateway_for("http://127.0.0.1:9").parse_notification({}, body)


def test_reply_and_unsupported_sign_type() -> None:
    gateway = gateway_for("http://127.0.0.1:9")

    assert gateway.notification_reply(ok=True).body == b"success"
    assert gateway.notification_reply(ok=False).body == b"fail"
    with pytest.raises(ChannelNotConfigured):
        WallytGateway(WallytConfig(**{**gateway.config.__dict__, "sign_type": "RSA_1_256"}))


def test_foreign_mch_id_or_sub_appid_is_refused_by_the_checks() -> None:
    """mch_id and sub_appid are compared by ``CHECKS`` (payments.gateways.trust) against our configuration."""
    gateway = gateway_for("http://127.0.0.1:9")
    ours = trade_expectations(
        payment_no=NOTIFY["out_trade_no"],
        payment_gateway="wallyt",
        amount_fen=int(NOTIFY["total_fee"]),
        identity=gateway.identity(),
    )
    for change, wire in (({"mch_id": "999"}, "mch_id"), ({"sub_appid": "wx0000000000000000"}, "sub_appid")):
        trade = gateway.parse_notification({}, signed_xml({**NOTIFY, **change})).trade
        with pytest.raises(FieldMismatch) as refused:
            check_trade(gateway.checks, trade, ours)
        assert refused.value.details["wire"].split(" / ")[0] == wire
    check_trade(gateway.checks, gateway.parse_notification({}, signed_xml(NOTIFY)).trade, ours)
