"""Bill files: the parsers against the sandbox's generators, and the adapters' ``bill()`` over HTTP
(SHA1 check, gzip, NO_STATEMENT_EXIST / isp.bill_not_exist, Alipay ZIP of GBK CSVs)."""

import datetime as dt
import gzip
import hashlib

import pytest

from core.errors import ChannelNotConfigured, GatewayUnavailable
from payments.gateways import bills
from payments.gateways.registry import get_gateway
from payments.tests.flows import pay, rental
from sandbox import bills as sandbox_bills
from sandbox.state import CST, Refund, Trade

pytestmark = pytest.mark.django_db
DAY = dt.date(2026, 5, 1)


def _trade(no: str, amount: int, at: dt.datetime, gateway: str = "wechat") -> Trade:
    return Trade(
        gateway=gateway,
        out_trade_no=no,
        transaction_id=f"42{no}",
        amount=amount,
        description="Locker, 2 h",
        notify_url="",
        appid="wxapp",
        trade_type="NATIVE",
        state="SUCCESS",
        success_time=at,
        created_at=at - dt.timedelta(minutes=1),
    )


def _refund(trade: Trade, no: str, amount: int, at: dt.datetime) -> Refund:
    return Refund(
        gateway=trade.gateway,
        out_refund_no=no,
        refund_id=f"50{no}",
        out_trade_no=trade.out_trade_no,
        transaction_id=trade.transaction_id,
        amount=amount,
        total=trade.amount,
        status="SUCCESS",
        success_time=at,
        created_at=at,
    )


def _at(hour: int, minute: int = 0, day: dt.date = DAY) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(hour, minute), tzinfo=CST)


def test_wechat_csv_rows_become_entries_and_summary_rows_are_skipped():
    paid = _trade("P1", 1234, _at(10))
    other_day = _trade("P2", 500, _at(10, day=DAY + dt.timedelta(days=1)))
    csv_text = sandbox_bills.wechat_trade_bill(
        [paid, other_day], [_refund(paid, "R1", 234, _at(11))], DAY, "ALL", "1900000001"
    )

    entries = bills.parse_wechat_trade_bill(csv_text)

    assert [(e.kind, e.reference, e.amount_fen, e.status) for e in entries] == [
        ("payment", "P1", 1234, "succeeded"),
        ("refund", "R1", 234, "succeeded"),
    ]
    assert entries[0].occurred_at == _at(10) and entries[0].gateway_trade_no == "42P1"
    assert entries[1].out_trade_no == "P1" and entries[1].raw["交易状态"] == "REFUND"


def test_wechat_csv_without_header_column_is_refused():
    with pytest.raises(ValueError, match="商户订单号"):
        bills.parse_wechat_trade_bill("交易时间,微信订单号\r\n`2026-05-01 10:00:00,`42\r\n")


def test_alipay_zip_of_gbk_csv_becomes_entries():
    paid = _trade("A1", 9900, _at(9), gateway="alipay")
    data = sandbox_bills.alipay_trade_bill([paid], [_refund(paid, "AR1", 900, _at(12))], DAY, "2088000000000001")

    entries = bills.parse_alipay_bill_zip(data)

    assert [(e.kind, e.out_trade_no, e.out_refund_no, e.amount_fen, e.status) for e in entries] == [
        ("payment", "A1", None, 9900, "succeeded"),
        ("refund", "A1", "AR1", 900, "succeeded"),
    ]
    assert entries[1].reference == "AR1" and entries[1].occurred_at == _at(12)


def test_sha1_is_of_the_uncompressed_bill():
    raw = "交易时间\r\n".encode()
    digest = hashlib.sha1(raw).hexdigest()
    assert bills.gunzip(gzip.compress(raw)) == raw
    assert bills.sha1_matches(raw, digest.upper())
    assert not bills.sha1_matches(raw + b"x", digest)
    with pytest.raises(ValueError):
        bills.gunzip(b"\x1f\x8b" + b"garbage")


# --------------------------------------------------------------------------- over HTTP


def _pay_at(user_api, sandbox, channel: str, success_time: dt.datetime) -> str:
    import requests

    order = rental(user_api)
    extra = {"openid": "o-bill"} if channel == "wallyt_jsapi" else {}
    started = pay(user_api, order["order_no"], channel, **extra)
    assert started.status_code == 201, started.content
    payment_no = started.json()["payment_no"]
    if channel.startswith("alipay"):
        requests.get(started.json()["pay_url"], timeout=10)
    sandbox.control(
        f"{channel.split('_')[0]}/transactions/{payment_no}/pay", json={"success_time": success_time.isoformat()}
    )
    return payment_no


def _past_day() -> dt.date:
    return dt.datetime.now(CST).date() - dt.timedelta(days=5)


def test_wechat_bill_is_downloaded_verified_and_parsed(user_api, gateways):
    day = _past_day()
    payment_no = _pay_at(user_api, gateways, "wechat_native", _at(10, day=day))

    entries = get_gateway("wechat").bill(day)

    assert [(e.kind, e.reference, e.status) for e in entries] == [("payment", payment_no, "succeeded")]
    assert get_gateway("wechat").bill(day - dt.timedelta(days=1)) == []  # NO_STATEMENT_EXIST


def test_wechat_bill_with_wrong_sha1_is_refused(user_api, gateways, monkeypatch):
    day = _past_day()
    _pay_at(user_api, gateways, "wechat_native", _at(10, day=day))
    client = get_gateway("wechat").client()
    real_download = type(client).download_bill

    def tampered(self, url):
        status, body = real_download(self, url)
        return status, gzip.compress(gzip.decompress(body).replace(b"SUCCESS", b"SUCCESS "))

    monkeypatch.setattr(type(client), "download_bill", tampered)

    with pytest.raises(GatewayUnavailable, match="SHA1"):
        get_gateway("wechat").bill(day)


def test_wechat_bill_download_failure_is_retryable(user_api, gateways):
    day = _past_day()
    _pay_at(user_api, gateways, "wechat_native", _at(10, day=day))
    gateways.fault("wechat.bill_download", "http_500")
    with pytest.raises(GatewayUnavailable):
        get_gateway("wechat").bill(day)


def test_alipay_bill_is_downloaded_and_parsed(user_api, gateways):
    day = _past_day()
    payment_no = _pay_at(user_api, gateways, "alipay_page", _at(15, 30, day=day))

    entries = get_gateway("alipay").bill(day)

    assert [(e.kind, e.reference, e.status, e.occurred_at) for e in entries] == [
        ("payment", payment_no, "succeeded", _at(15, 30, day=day))
    ]
    assert get_gateway("alipay").bill(day + dt.timedelta(days=1)) == []  # isp.bill_not_exist


def test_alipay_bill_download_error_is_retryable(user_api, gateways):
    day = _past_day()
    _pay_at(user_api, gateways, "alipay_page", _at(15, day=day))
    gateways.fault("alipay.bill_download", "malformed")
    with pytest.raises(GatewayUnavailable):
        get_gateway("alipay").bill(day)


# --------------------------------------------------------------------------- fees and totals


@pytest.mark.parametrize("gateway", ["wechat", "alipay", "wallyt"])
def test_every_bill_gives_each_rows_fee_and_its_own_totals(gateway):
    paid = _trade("P1", 332271, _at(10), gateway=gateway)
    small = _trade("P2", 999, _at(11), gateway=gateway)
    refund = _refund(paid, "R1", 1000, _at(12))
    if gateway == "wechat":
        text = sandbox_bills.wechat_trade_bill([paid, small], [refund], DAY, "ALL", "1900000001")
        assert ",`19.94000," in text  # WeChat writes fees with five decimals
        bill = bills.parse_wechat_trade_bill(text)
    elif gateway == "alipay":
        bill = bills.parse_alipay_bill_zip(sandbox_bills.alipay_trade_bill([paid, small], [refund], DAY, "2088"))
    else:
        bill = bills.parse_wallyt_bill(sandbox_bills.wallyt_bill([paid, small], [refund], DAY, "ALL", "755"))
    rate = sandbox_bills.FEE_PER_MILLE[gateway]
    fee = lambda fen: (fen * rate + 500) // 1000  # noqa: E731 - the sandbox's rate, half up
    # kept on a payment, given back with a refund, whatever sign the file writes
    assert [(e.kind, e.reference, e.fee_fen) for e in bill] == [
        ("payment", "P1", fee(332271)),
        ("payment", "P2", fee(999)),
        ("refund", "R1", -fee(1000)),
    ]
    fees = fee(332271) + fee(999) - fee(1000)
    assert (bill.totals.gross_fen, bill.totals.refunds_fen, bill.totals.fees_fen) == (333270, 1000, fees)
    assert bill.totals.settled_fen == 333270 - 1000 - fees


def test_wallyt_bill_rows_by_header_name_with_chinese_states():
    paid = _trade("W1", 1234, _at(9), gateway="wallyt")
    text = sandbox_bills.wallyt_bill([paid], [_refund(paid, "WR1", 234, _at(13))], DAY, "ALL", "755")
    assert text.startswith("\ufeff交易时间,") and "`支付成功" in text and "`转入退款" in text
    bill = bills.parse_wallyt_bill(text)
    assert [(e.kind, e.out_trade_no, e.out_refund_no, e.amount_fen, e.status) for e in bill] == [
        ("payment", "W1", None, 1234, "succeeded"),
        ("refund", "W1", "WR1", 234, "succeeded"),
    ]
    assert bill[0].gateway_trade_no == "42W1" and bill[1].occurred_at == _at(13)
    # an older header with other columns and English states, parsed by name
    old = (
        "交易时间,平台订单号,商户订单号,交易状态,总金额,商户退款单号,退款金额,退款状态,手续费\r\n"
        "`2026-05-01 10:00:00,`7551,`W9,`SUCCESS,`12.00,`,`0.00,`,`0.04\r\n"
    )
    [entry] = bills.parse_wallyt_bill(old)
    assert (entry.reference, entry.amount_fen, entry.fee_fen, entry.status) == ("W9", 1200, 4, "succeeded")
    assert bills.parse_wallyt_bill(old).totals is None  # no summary: nothing stated
    with pytest.raises(ValueError, match="商户订单号"):
        bills.parse_wallyt_bill("交易时间,平台订单号\r\n`2026-05-01 10:00:00,`7551\r\n")


@pytest.mark.parametrize("cell", ["abc", "0.1234567", "NaN"])
def test_a_fee_that_is_not_money_is_refused(cell):
    paid = _trade("P1", 1000, _at(10))
    text = sandbox_bills.wechat_trade_bill([paid], [], DAY, "ALL", "1900000001").replace("`0.06000", f"`{cell}", 1)
    with pytest.raises(ValueError):
        bills.parse_wechat_trade_bill(text)


def test_wallyt_bill_over_http_and_its_failures(user_api, gateways):
    day = _past_day()
    payment_no = _pay_at(user_api, gateways, "wallyt_jsapi", _at(11, day=day))

    bill = get_gateway("wallyt").bill(day)

    assert [(e.kind, e.reference, e.status, e.fee_fen) for e in bill] == [
        ("payment", payment_no, "succeeded", sandbox_bills.fee_fen(bill[0].amount_fen, "wallyt"))
    ]
    assert bill.totals.gross_fen == bill[0].amount_fen
    empty = get_gateway("wallyt").bill(day - dt.timedelta(days=1))
    assert list(empty) == [] and empty.totals.gross_fen == 0  # a day without trades: a zero summary
    gateways.fault("wallyt.bill", "malformed")
    with pytest.raises(GatewayUnavailable, match="cannot be parsed"):
        get_gateway("wallyt").bill(day)
    gateways.fault("wallyt.bill", "http_500")
    with pytest.raises(GatewayUnavailable, match="HTTP 500"):
        get_gateway("wallyt").bill(day)


def test_wallyt_bill_request_is_signed_and_an_error_reply_is_not_a_bill(gateways, settings):
    from payments.gateways.registry import reset_gateways

    settings.WALLYT_SECRET_KEY = "not-the-sandbox-key"  # our signature no longer verifies there
    reset_gateways()
    with pytest.raises(GatewayUnavailable, match="验证签名失败"):
        get_gateway("wallyt").bill(_past_day())
    settings.WALLYT_SECRET_KEY = ""
    settings.WALLYT_BILL_URL = ""
    reset_gateways()
    with pytest.raises(ChannelNotConfigured, match="WALLYT_BILL_URL"):
        get_gateway("wallyt").bill(_past_day())
