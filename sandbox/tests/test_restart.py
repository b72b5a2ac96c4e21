"""The sandbox forgets nothing on a restart (even `kill -9`): trades, refunds, bill files, pending notifications
with their retry schedule, refunds due to settle, faults. A restart is a fault to inject, not a loss of data."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest

from sandbox.persist import DataDirInUse, Persist
from sandbox.testing import SandboxHandle, SandboxStartError, running_sandbox, sandbox_argv, start_process

from .conftest import Receiver
from .test_alipay import make_client as alipay_client
from .test_alipay import open_cashier
from .test_wallyt import Client as WallytClient
from .test_wallyt import jspay
from .test_wechat import jsapi, make_client


@pytest.fixture
def own_sandbox(tmp_path: Path) -> Any:
    # slow enough that notifications are still being retried and a refund still waits to settle at the restart
    with running_sandbox(data_dir=tmp_path / "data", notify_scale=0.02, refund_settle_seconds=4) as handle:
        yield handle


def _world(sandbox: SandboxHandle) -> dict[str, Any]:
    trades = {(t["gateway"], t["out_trade_no"]): t for t in sandbox.control("transactions")["transactions"]}
    refunds = {(r["gateway"], r["out_refund_no"]): r for r in sandbox.control("refunds")["refunds"]}
    deliveries = {d["id"]: d for d in sandbox.notifications()}
    return {"trades": trades, "refunds": refunds, "deliveries": deliveries}


def test_a_killed_sandbox_remembers_everything_and_resumes_notifications(
    own_sandbox: SandboxHandle, tmp_path: Path, receiver: Receiver, uid: str
) -> None:
    sb = own_sandbox
    receiver.default = (500, b"fail")  # the merchant is down: every notification waits for its next retry
    wx = make_client(sb, tmp_path, notify_url=receiver.url + "/wechat")
    jsapi(wx, "W" + uid, total=300)
    yesterday = dt.datetime.now(dt.timezone(dt.timedelta(hours=8))).date() - dt.timedelta(days=1)
    sb.control(f"wechat/transactions/W{uid}/pay", json={"success_time": f"{yesterday}T12:00:00+08:00"})
    status, _ = wx.refund(
        out_refund_no="RW" + uid,
        amount={"refund": 100, "total": 300, "currency": "CNY"},
        out_trade_no="W" + uid,
        notify_url=receiver.url + "/wechat-refund",
    )
    assert status == 200
    ali = alipay_client(sb, notify_url=receiver.url + "/alipay")
    open_cashier(ali, "A" + uid, total="5.00")
    sb.control(f"alipay/transactions/A{uid}/pay", json={})
    jspay(WallytClient(sb), "L" + uid, notify_url=receiver.url + "/wallyt")
    sb.control(f"wallyt/transactions/L{uid}/pay", json={})
    sb.fault("wechat.query", "http_500", count=2)
    bill = wx.trade_bill(bill_date=str(yesterday))  # today's bill is not published yet
    download_url = json.loads(bill[1])["download_url"]
    sb.wait_for(lambda: len(receiver.received()) >= 3)  # each notification tried once, refused
    before = _world(sb)
    assert {d["state"] for d in before["deliveries"].values()} == {"pending"}

    sb.restart(kill=True)

    after = _world(sb)
    assert after["trades"] == before["trades"]
    assert after["refunds"].keys() == before["refunds"].keys()
    assert after["deliveries"].keys() == before["deliveries"].keys()
    assert [f["count"] for f in sb.control("faults")["faults"]] == [2]
    assert wx.query(out_trade_no="W" + uid)[0] == 500  # the fault plan too
    assert wx.download_bill(download_url)[0] == 200  # the bill file

    # the merchant is back: the pending notifications go on with their schedule and are delivered, same ids
    receiver.default = (200, b"success")
    delivered = sb.wait_for(
        lambda: (
            all(d["state"] == "delivered" for d in sb.notifications() if d["event"] != "REFUND.SUCCESS")
            and sb.notifications()
        ),
        timeout=30,
    )
    assert delivered
    first_bodies = {d["id"]: d["body"] for d in before["deliveries"].values() if d["gateway"] == "wechat"}
    for delivery in sb.notifications(gateway="wechat"):
        if delivery["id"] in first_bodies:
            assert delivery["body"] == first_bodies[delivery["id"]]  # the same notification (same id), not a new one
            assert len(delivery["attempts"]) >= 2
    # the refund that was due to settle settles, with its notification
    settled = sb.wait_for(lambda: sb.control(f"wechat/refunds/RW{uid}")["status"] == "SUCCESS", timeout=20)
    assert settled
    sb.wait_for(lambda: receiver.received("/wechat-refund"), timeout=20)
    assert wx.query_refund(out_refund_no="RW" + uid)[0] == 200


def test_reset_forgets_on_disk_too(own_sandbox: SandboxHandle, tmp_path: Path, uid: str) -> None:
    jsapi(make_client(own_sandbox, tmp_path), uid)
    own_sandbox.reset()
    own_sandbox.restart(kill=False)
    assert own_sandbox.control("transactions")["transactions"] == []


def test_one_sandbox_per_data_folder(own_sandbox: SandboxHandle, tmp_path: Path) -> None:
    with pytest.raises(SandboxStartError, match="another sandbox is running on"):
        start_process(
            sandbox_argv(data_dir=own_sandbox.data_dir, notify_scale=1, refund_settle_seconds=0), own_sandbox.env, []
        )
    first = Persist(tmp_path)
    try:
        with pytest.raises(DataDirInUse):
            Persist(tmp_path)
    finally:
        first.close()
    Persist(tmp_path).close()  # released with its holder


def test_a_random_fault_plan_is_seeded_and_survives_a_restart(own_sandbox: SandboxHandle, tmp_path: Path) -> None:
    sb = own_sandbox
    plan = sb.control("faults/plan", json={"rate": 0.5, "seed": 7, "api": {"http_500": 1}, "targets": ["wechat.*"]})
    assert plan["rate"] == 0.5 and plan["fired"] == 0
    wx = make_client(sb, tmp_path)
    statuses = [wx.query(out_trade_no=f"NONE{i}")[0] for i in range(40)]
    assert set(statuses) == {404, 500} and 8 <= statuses.count(500) <= 32
    fired = sb.control("faults/plan")["fired"]
    assert fired == statuses.count(500) and sb.control("faults/plan")["seen"] == 40

    sb.restart(kill=True)

    assert sb.control("faults/plan")["rate"] == 0.5
    assert sb.control("faults/plan")["fired"] == fired
    sb.control("faults", method="DELETE")
    assert sb.control("faults/plan")["rate"] == 0
