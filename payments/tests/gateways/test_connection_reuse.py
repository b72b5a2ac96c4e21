"""Each adapter keeps its connection to the gateway: real SDK calls against the sandbox, counted in the
session's connection pool (urllib3 counts the connections it opened and the requests it sent)."""

from __future__ import annotations

import os
import secrets
from typing import Any

import pytest
import requests

from core.errors import TradeNotFound
from payments.gateways.transport import ProcessSession, new_session

from .conftest import Receiver
from .test_alipay_sandbox import make_gateway as make_alipay
from .test_wallyt_sandbox import create as wallyt_create
from .test_wallyt_sandbox import make_gateway as make_wallyt
from .test_wechat_sandbox import make_gateway as make_wechat
from .test_wechat_sandbox import prepay


def pool_counts(session: requests.Session, url: str) -> tuple[int, int]:
    """(connections opened, requests sent) by the session's pools for ``url``."""
    pools = session.get_adapter(url).poolmanager.pools
    opened = [pools[key] for key in pools.keys()]  # noqa: SIM118 - RecentlyUsedContainer has no __iter__
    return sum(p.num_connections for p in opened), sum(p.num_requests for p in opened)


def test_wechat_calls_share_one_connection(sandbox: Any, receiver: Receiver) -> None:
    gateway = make_wechat(sandbox, receiver)
    native = prepay("native")

    gateway.create(native)
    gateway.create(prepay("h5", client_ip="203.0.113.7"))
    assert gateway.query(native.payment_no).payment_no == native.payment_no

    assert pool_counts(gateway.client()._core._http.get(), sandbox.base_url) == (1, 3)


def test_alipay_calls_share_one_connection(sandbox: Any, receiver: Receiver) -> None:
    gateway = make_alipay(sandbox, receiver)

    for _ in range(2):
        with pytest.raises(TradeNotFound):  # a signed error answer: one round trip each
            gateway.query(f"AP{secrets.token_hex(8)}")

    assert pool_counts(gateway.client.http.get(), sandbox.alipay_gateway) == (1, 2)


def test_wallyt_calls_share_one_connection(sandbox: Any, receiver: Receiver) -> None:
    gateway = make_wallyt(sandbox, receiver)

    wallyt_create(gateway)
    wallyt_create(gateway)

    assert pool_counts(gateway._http.get(), sandbox.wallyt_url) == (1, 2)


def test_a_forked_child_builds_its_own_session() -> None:
    process_session = ProcessSession("http://127.0.0.1:9/")
    parent = process_session.get()
    assert process_session.get() is parent  # one per process

    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: a socket of the parent's pool must never be written from here
        try:
            os.write(write_end, b"new" if process_session.get() is not parent else b"same")
        finally:
            os._exit(0)
    os.close(write_end)
    answer = os.read(read_end, 8)
    os.close(read_end)
    os.waitpid(pid, 0)

    assert answer == b"new"
    assert process_session.get() is parent  # the parent keeps its own


def test_a_session_keeps_no_cookie_and_reads_the_proxy_environment_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example:3128")
    monkeypatch.setenv("NO_PROXY", "")
    session = new_session("https://api.mch.weixin.qq.com")
    monkeypatch.setenv("HTTPS_PROXY", "http://other.example:3128")  # later changes are not read per call

    assert session.trust_env is False
    assert session.proxies["https"] == "http://proxy.example:3128"
    request = requests.Request("GET", "https://api.mch.weixin.qq.com/v3/pay/transactions/id/1").prepare()
    cookie = requests.cookies.create_cookie("sid", "1", domain="api.mch.weixin.qq.com")
    assert not session.cookies.get_policy().set_ok(cookie, requests.cookies.MockRequest(request))
