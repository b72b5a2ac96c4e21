"""The sandbox's tools for trying the trust boundary: `mutate` faults (a message changed before it is
signed), WeChat's signing switch, Alipay's GBK notifies and Wallyt's RSA_1_256."""

from __future__ import annotations

import secrets

import pytest
import requests
from cryptography.hazmat.primitives.serialization import load_pem_private_key, load_pem_public_key

from sandbox.faults import Fault, mutated
from sandbox.testing import SandboxHandle
from sandbox.wallyt import parse_xml, rsa_sign_params, rsa_verify_params, to_xml

from .conftest import key_text


def test_mutated_sets_and_drops_dotted_paths_on_a_copy() -> None:
    data = {"amount": {"total": 100, "currency": "CNY"}, "mchid": "1"}
    fault = Fault(id=1, target="x", kind="mutate", set={"amount.total": 1, "appid": "wx"}, drop=["mchid"])

    assert mutated(data, fault) == {"amount": {"total": 1, "currency": "CNY"}, "appid": "wx"}
    assert data == {"amount": {"total": 100, "currency": "CNY"}, "mchid": "1"}  # untouched
    assert mutated(data, None) is data


@pytest.mark.parametrize(
    "spec",
    [
        {"target": "wechat.query", "kind": "mutate"},  # nothing to change
        {"target": "wechat.query", "kind": "mutate", "sign_with": "mine"},
        {"target": "wechat.notify", "kind": "timeout"},
    ],
)
def test_bad_fault_specs_are_refused(sandbox: SandboxHandle, spec: dict) -> None:
    with pytest.raises(requests.HTTPError, match="400"):
        sandbox.control("faults", json=spec)


def test_signing_mode_and_notify_charset_are_validated(sandbox: SandboxHandle) -> None:
    with pytest.raises(requests.HTTPError, match="400"):
        sandbox.control("wechat/signing", json={"mode": "both"})
    with pytest.raises(requests.HTTPError, match="400"):
        sandbox.control("alipay/notify-charset", json={"charset": "latin-1"})
    assert sandbox.control("alipay/notify-charset", json={"charset": "gbk"}) == {"charset": "gbk"}
    sandbox.control("alipay/notify-charset", json={"charset": "utf-8"})


def test_wallyt_rsa_1_256_request_is_verified_and_answered_with_the_platform_key(sandbox: SandboxHandle) -> None:
    merchant = load_pem_private_key(key_text(sandbox, "wallyt/merchant_private_key.pem").encode(), None)
    platform = load_pem_public_key(key_text(sandbox, "wallyt/platform_public_key.pem").encode())
    params = {
        "service": "unified.trade.query",
        "version": "2.0",
        "charset": "UTF-8",
        "sign_type": "RSA_1_256",
        "mch_id": sandbox.credentials["wallyt"]["mch_id"],
        "nonce_str": secrets.token_hex(8),
        "out_trade_no": "NOSUCHTRADE1",
    }

    answer = parse_xml(
        requests.post(
            sandbox.wallyt_url, data=to_xml({**params, "sign": rsa_sign_params(params, merchant)}), timeout=5
        ).content
    )
    assert answer["status"] == "0" and answer["sign_type"] == "RSA_1_256" and rsa_verify_params(answer, platform)

    forged = parse_xml(requests.post(sandbox.wallyt_url, data=to_xml({**params, "sign": "AAAA"}), timeout=5).content)
    assert forged["status"] != "0"  # refused at the transport layer, unsigned
