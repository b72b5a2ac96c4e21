"""Key generation, process lifecycle and the generic control API."""

from __future__ import annotations

import json
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from sandbox.keys import FILES, ensure_keys
from sandbox.testing import PROJECT_ROOT, SandboxStartError, running_sandbox


def test_ensure_keys_layout_and_idempotence(tmp_path: Path) -> None:
    info = ensure_keys(tmp_path)
    for rel in FILES.values():
        assert (tmp_path / rel).exists(), rel
    for rel in (
        "wechat/merchant_private_key.pem",
        "wechat/platform_private_key.pem",
        "wechat/apiv3_key",
        "alipay/app_private_key.pem",
        "alipay/alipay_private_key.pem",
        "wallyt/secret_key",
    ):
        assert stat.S_IMODE((tmp_path / rel).stat().st_mode) == 0o600, rel
    creds = json.loads((tmp_path / "credentials.json").read_text())
    wx = creds["wechat"]
    assert wx["appid"].startswith("wx") and wx["mini_appid"].startswith("wx") and wx["mchid"].isdigit()
    assert wx["public_key_id"].startswith("PUB_KEY_ID_0") and wx["public_key_id"][11:].isdigit()
    merchant = x509.load_pem_x509_certificate((tmp_path / "wechat/merchant_cert.pem").read_bytes())
    platform = x509.load_pem_x509_certificate((tmp_path / "wechat/platform_cert.pem").read_bytes())
    assert wx["merchant_serial_no"] == format(merchant.serial_number, "X") == wx["merchant_serial_no"].upper()
    assert wx["platform_serial_no"] == format(platform.serial_number, "X")
    assert (platform.not_valid_after_utc - platform.not_valid_before_utc).days >= 5 * 365
    assert len((tmp_path / "wechat/apiv3_key").read_text()) == 32
    key = (tmp_path / "wallyt/secret_key").read_text()
    assert len(key) == 32 and int(key, 16) >= 0
    assert creds["alipay"]["app_id"].startswith("2021") and creds["wallyt"]["mch_id"].isdigit()
    priv = serialization.load_pem_private_key((tmp_path / "wechat/merchant_private_key.pem").read_bytes(), None)
    assert b"BEGIN PRIVATE KEY" in (tmp_path / "wechat/merchant_private_key.pem").read_bytes()  # PKCS#8
    assert priv.public_key().public_numbers() == merchant.public_key().public_numbers()
    before = {rel: (tmp_path / rel).read_bytes() for rel in FILES.values()}
    assert ensure_keys(tmp_path)["credentials"] == info["credentials"]
    assert before == {rel: (tmp_path / rel).read_bytes() for rel in FILES.values()}


def test_ensure_keys_race(tmp_path: Path) -> None:
    code = "import sys; from sandbox.keys import ensure_keys; print(ensure_keys(sys.argv[1])['credentials'])"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code, str(tmp_path)], cwd=PROJECT_ROOT, stdout=subprocess.PIPE, text=True
        )
        for _ in range(3)
    ]
    outs = {p.communicate(timeout=60)[0] for p in procs}
    assert len(outs) == 1 and all(p.returncode == 0 for p in procs)


def test_start_failure_reports_output(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(SandboxStartError, match="exited"), running_sandbox(data_dir=blocker / "sub"):
        pass


def test_lifecycle_reset_autosettle_and_sigterm(tmp_path: Path) -> None:
    with running_sandbox(data_dir=tmp_path, refund_settle_seconds=0.2) as sb:
        assert requests.get(sb.base_url + "/healthz").json()["status"] == "ok"
        cfg = sb.control("config")
        assert cfg["credentials"] == sb.credentials and "wechat.pay" in cfg["fault_targets"]["wechat"]
        # a Wallyt trade is the quickest to create without an SDK
        from sandbox.wallyt import parse_xml, sign_params

        key = sb.read("wallyt/secret_key")
        params = {
            "service": "pay.weixin.jspay",
            "mch_id": sb.credentials["wallyt"]["mch_id"],
            "nonce_str": "n1",
            "out_trade_no": "LIFE1",
            "body": "b",
            "total_fee": "10",
            "mch_create_ip": "1.1.1.1",
            "notify_url": "http://127.0.0.1:9/x",
        }
        params["sign"] = sign_params(params, key)
        xml = "<xml>" + "".join(f"<{k}>{v}</{k}>" for k, v in params.items()) + "</xml>"
        assert parse_xml(requests.post(sb.wallyt_url, data=xml).content)["result_code"] == "0"
        assert [t["out_trade_no"] for t in sb.control("transactions")["transactions"]] == ["LIFE1"]
        sb.control("wallyt/transactions/LIFE1/pay", json={})
        refund = dict(
            params, service="unified.trade.refund", out_refund_no="LR1", refund_fee="10", op_user_id=params["mch_id"]
        )
        refund.pop("sign")
        refund["sign"] = sign_params(refund, key)
        xml = "<xml>" + "".join(f"<{k}>{v}</{k}>" for k, v in refund.items()) + "</xml>"
        assert parse_xml(requests.post(sb.wallyt_url, data=xml).content)["result_code"] == "0"
        sb.wait_for(lambda: sb.control("wallyt/refunds/LR1")["status"] == "SUCCESS", timeout=5)
        with pytest.raises(requests.HTTPError):
            sb.control("wallyt/refunds/LR1/settle", json={"status": "CLOSED"})
        page = requests.get(sb.base_url + "/cashier/")
        assert page.status_code == 200
        sb.reset()
        assert sb.control("transactions")["transactions"] == []
        proc = sb.process
        proc.terminate()
        assert proc.wait(timeout=10) == 0
