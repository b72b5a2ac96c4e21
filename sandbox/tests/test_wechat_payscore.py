"""The sandbox's Pay Score service orders, driven by the real wechatpayv3 SDK (its `payscore_*` calls)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from wechatpayv3 import WeChatPay

from sandbox.testing import SandboxHandle, running_sandbox

from .conftest import Receiver
from .test_wechat import make_client


def _create(wx: WeChatPay, sb: SandboxHandle, no: str, *, risk: int = 5000, notify_url: str | None = None):
    return wx.payscore_create(
        out_order_no=no,
        service_id=sb.credentials["wechat"]["payscore_service_id"],
        service_introduction="Locker rental",
        time_range={"start_time": "20261130100000"},
        risk_fund={"name": "ESTIMATE_ORDER_COST", "amount": risk},
        notify_url=notify_url or "http://127.0.0.1:9/notify",
    )


def _complete(wx: WeChatPay, sb: SandboxHandle, no: str, total: int):
    return wx.payscore_complete(
        out_order_no=no,
        service_id=sb.credentials["wechat"]["payscore_service_id"],
        post_payments=[{"name": "Locker 2h", "amount": total, "count": 1}],
        total_amount=total,
    )


def _query(wx: WeChatPay, sb: SandboxHandle, no: str) -> dict[str, Any]:
    status, body = wx.payscore_query(service_id=sb.credentials["wechat"]["payscore_service_id"], out_order_no=no)
    assert status == 200, body
    return json.loads(body)


@pytest.fixture
def wx(sandbox: SandboxHandle, tmp_path: Path) -> WeChatPay:
    return make_client(sandbox, tmp_path)


def test_lifecycle_with_notifications(sandbox: SandboxHandle, tmp_path: Path, receiver: Receiver, uid: str) -> None:
    wx = make_client(sandbox, tmp_path, notify_url=receiver.url + "/wechat")
    status, body = _create(wx, sandbox, "S" + uid, notify_url=receiver.url + "/payscore")
    created = json.loads(body)
    assert status == 200 and created["state"] == "CREATED" and created["package"] and created["order_id"]
    assert _create(wx, sandbox, "S" + uid, notify_url=receiver.url + "/payscore")[1] == body  # idempotent
    assert _create(wx, sandbox, "S" + uid, risk=1)[0] == 400  # same number, another request

    assert _complete(wx, sandbox, "S" + uid, 300)[0] == 400  # not confirmed yet
    sandbox.control(f"wechat/payscore/S{uid}/confirm", json={"openid": "o-1"})
    order = _query(wx, sandbox, "S" + uid)
    assert (order["state"], order["state_description"], order["openid"]) == ("DOING", "USER_CONFIRM", "o-1")

    assert _complete(wx, sandbox, "S" + uid, 9000)[0] == 400  # over the risk fund
    status, body = _complete(wx, sandbox, "S" + uid, 300)
    assert status == 200 and json.loads(body)["state_description"] == "MCH_COMPLETE"
    order = _query(wx, sandbox, "S" + uid)
    assert order["state"] == "DONE" and order["collection"]["state"] == "USER_PAID"
    assert order["collection"]["paid_amount"] == 300 and order["collection"]["details"][0]["transaction_id"]

    events = sandbox.wait_for(lambda: [d["event"] for d in sandbox.notifications(out_order_no="S" + uid)][:2])
    assert events == ["PAYSCORE.USER_CONFIRM", "PAYSCORE.USER_PAID"]
    sandbox.wait_for(lambda: len(receiver.received()) >= 2)
    first = receiver.received()[0]
    assert (
        first["headers"]["Wechatpay-Signature"] and json.loads(first["body"])["event_type"] == "PAYSCORE.USER_CONFIRM"
    )


def test_unpaid_stays_collecting_and_sync_settles_it(sandbox: SandboxHandle, wx: WeChatPay, uid: str) -> None:
    _create(wx, sandbox, "U" + uid)
    sandbox.control(f"wechat/payscore/U{uid}/confirm", json={})
    sandbox.control(f"wechat/payscore/U{uid}/collect", json={"outcome": "unpaid"})
    _complete(wx, sandbox, "U" + uid, 500)
    order = _query(wx, sandbox, "U" + uid)
    assert (order["state"], order["state_description"]) == ("DOING", "MCH_COMPLETE")
    assert order["collection"]["state"] == "USER_PAYING" and order["collection"]["paid_amount"] == 0
    assert not sandbox.notifications(out_order_no="U" + uid, event="PAYSCORE.USER_PAID")

    service_id = sandbox.credentials["wechat"]["payscore_service_id"]
    status, _ = wx.payscore_sync(out_order_no="U" + uid, service_id=service_id, detail={"paid_time": "20261130120000"})
    assert status == 200 and _query(wx, sandbox, "U" + uid)["state"] == "DONE"


def test_cancel_decline_expire(sandbox: SandboxHandle, wx: WeChatPay, uid: str) -> None:
    service_id = sandbox.credentials["wechat"]["payscore_service_id"]
    _create(wx, sandbox, "C" + uid)
    sandbox.control(f"wechat/payscore/C{uid}/decline", json={})
    assert _query(wx, sandbox, "C" + uid)["state"] == "CREATED"  # declining notifies and changes nothing
    assert wx.payscore_cancel(out_order_no="C" + uid, service_id=service_id, reason="not used")[0] == 200
    assert _query(wx, sandbox, "C" + uid)["state"] == "REVOKED"
    assert _complete(wx, sandbox, "C" + uid, 100)[0] == 400

    _create(wx, sandbox, "E" + uid)
    sandbox.control(f"wechat/payscore/E{uid}/expire", json={})
    assert _query(wx, sandbox, "E" + uid)["state"] == "EXPIRED"
    assert wx.payscore_cancel(out_order_no="E" + uid, service_id=service_id, reason="x")[0] == 400

    assert wx.payscore_query(service_id="1" * 32, out_order_no="C" + uid)[0] == 400  # not our service
    assert wx.payscore_query(service_id=service_id, out_order_no="NOPE" + uid)[0] == 404


def test_service_orders_survive_a_restart(tmp_path: Path, uid: str) -> None:
    with running_sandbox(data_dir=tmp_path / "data", notify_scale=0.01) as sb:
        wx = make_client(sb, tmp_path)
        _create(wx, sb, "R" + uid)
        sb.control(f"wechat/payscore/R{uid}/confirm", json={})
        sb.restart(kill=True)
        assert _query(make_client(sb, tmp_path), sb, "R" + uid)["state_description"] == "USER_CONFIRM"
