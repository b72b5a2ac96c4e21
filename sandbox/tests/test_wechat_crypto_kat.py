"""Known-answer tests of sandbox.wechat_crypto against the official wechatpay-go test vectors."""

from __future__ import annotations

import json
from pathlib import Path

from cryptography import x509

from sandbox import wechat_crypto as wc

VECTORS = Path(__file__).resolve().parents[2] / "payments" / "tests" / "gateways" / "vectors"  # copied from shared/


def test_official_notification_verifies_and_decrypts() -> None:
    v = json.loads((VECTORS / "wechat_notify_official.json").read_text())
    cert = x509.load_pem_x509_certificate((VECTORS / v["platform_cert"]).read_bytes())
    body = v["body"].encode()
    assert wc.verify_signed(cert.public_key(), v["headers"], body)
    assert not wc.verify_signed(cert.public_key(), v["headers"], body + b" ")
    res = json.loads(body)["resource"]
    plain = wc.aes_gcm_decrypt(v["apiv3_key"], res["ciphertext"], res["associated_data"], res["nonce"])
    assert plain is not None and set(v["expected_plaintext_keys"]) <= set(json.loads(plain))
    assert wc.aes_gcm_decrypt("x" * 32, res["ciphertext"], res["associated_data"], res["nonce"]) is None


def test_official_certificates_response_decrypts() -> None:
    data = json.loads((VECTORS / "go_v3_certificates_response.json").read_text())["data"][0]
    enc = data["encrypt_certificate"]
    pem = wc.aes_gcm_decrypt("mockAPIv3Key1234", enc["ciphertext"], enc["associated_data"], enc["nonce"])
    assert pem is not None
    cert = x509.load_pem_x509_certificate(pem.encode())
    assert format(cert.serial_number, "X") == data["serial_no"].upper()
