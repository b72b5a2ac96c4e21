"""Craft WeChat notifications the way the platform does (sandbox keys, real crypto), for tests
that must vary one field at a time."""

from __future__ import annotations

import time
from dataclasses import dataclass

from cryptography.hazmat.primitives.serialization import load_pem_private_key

from sandbox.wechat_crypto import build_notification_body, signed_headers

NOTIFY_PATH = "/api/v1/payments/notify/wechat/"


@dataclass
class WeChatNotifier:
    sandbox: object

    @property
    def creds(self) -> dict:
        return self.sandbox.credentials["wechat"]

    def transaction(self, payment, **changes) -> dict:
        tx = {
            "appid": self.creds["appid"],
            "mchid": self.creds["mchid"],
            "out_trade_no": payment.payment_no,
            "transaction_id": f"4200{payment.pk:020d}",
            "trade_type": "NATIVE",
            "trade_state": "SUCCESS",
            "trade_state_desc": "ok",
            "bank_type": "OTHERS",
            "attach": "",
            "success_time": "2026-11-22T10:00:00+08:00",
            "payer": {"openid": "o-test"},
            "amount": {
                "total": payment.amount_fen,
                "payer_total": payment.amount_fen,
                "currency": "CNY",
                "payer_currency": "CNY",
            },
        }
        tx.update(changes)
        return tx

    def build(
        self,
        plaintext: dict,
        *,
        event_type="TRANSACTION.SUCCESS",
        original_type="transaction",
        notify_id=None,
        serial=None,
        timestamp=None,
        corrupt=False,
        apiv3_key=None,
    ) -> tuple[dict, bytes]:
        key = load_pem_private_key(self.sandbox.read("wechat/platform_private_key.pem").encode(), None)
        body = build_notification_body(
            apiv3_key=apiv3_key or self.sandbox.read("wechat/apiv3_key").strip(),
            event_type=event_type,
            plaintext=plaintext,
            original_type=original_type,
            notify_id=notify_id,
        )
        headers = signed_headers(
            key,
            serial or self.creds["public_key_id"],
            body,
            timestamp=timestamp or str(int(time.time())),
            corrupt=corrupt,
        )
        return headers, body

    @staticmethod
    def post(client, headers: dict, body: bytes):
        meta = {"HTTP_" + k.upper().replace("-", "_"): v for k, v in headers.items()}
        return client.post(NOTIFY_PATH, data=body, content_type="application/json", **meta)
