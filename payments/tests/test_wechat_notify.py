"""The WeChat notification inbox: every check failing one at a time changes nothing; duplicates
and concurrent duplicates end in exactly one transition."""

import logging
import time

import pytest
from django.db import connection
from django.test import Client

from conftest import run_concurrently
from lockers.tests.factories import CompartmentFactory, PricePlanFactory
from orders.models import Order, OrderEvent
from payments.models import GatewayNotification, Payment, PaymentEvent
from payments.tests.wechat_notify import WeChatNotifier
from wallets.services import wallet_get_or_create


def _pending_payment(user_api):
    PricePlanFactory(size="S")
    compartment = CompartmentFactory(size="S")
    order = user_api.post("/api/v1/orders/", {"compartment_id": compartment.pk, "hours": 1}, format="json").json()
    started = user_api.post(
        "/api/v1/payments/", {"order_no": order["order_no"], "channel": "wechat_native"}, format="json"
    )
    assert started.status_code == 201, started.content
    return Payment.objects.get(payment_no=started.json()["payment_no"])


def _unchanged(payment):
    payment.refresh_from_db()
    assert payment.status == "pending"
    assert payment.order.status == "pending_payment"
    assert not PaymentEvent.objects.filter(payment=payment, action="paid").exists()


def _case(notifier, payment, case):
    tx = notifier.transaction(payment)
    if case == "bad_signature":
        return notifier.build(tx, corrupt=True)
    if case == "unknown_serial":
        return notifier.build(tx, serial="PUB_KEY_ID_0000000000000000000000000000")
    if case == "stale_timestamp":
        return notifier.build(tx, timestamp=str(int(time.time()) - 3600))
    if case == "tampered_ciphertext":
        headers, body = notifier.build(tx)
        # flip one character of the ciphertext and re-sign the envelope (signature valid, GCM tag not)
        import json

        envelope = json.loads(body)
        c = envelope["resource"]["ciphertext"]
        envelope["resource"]["ciphertext"] = ("B" if c[0] == "A" else "A") + c[1:]
        from cryptography.hazmat.primitives.serialization import load_pem_private_key

        from sandbox.wechat_crypto import dumps, signed_headers

        key = load_pem_private_key(notifier.sandbox.read("wechat/platform_private_key.pem").encode(), None)
        body = dumps(envelope)
        return {**headers, **signed_headers(key, notifier.creds["public_key_id"], body)}, body
    if case == "wrong_apiv3_key":
        return notifier.build(tx, apiv3_key="0" * 32)
    if case == "wrong_appid":
        return notifier.build(notifier.transaction(payment, appid="wx0000000000000000"))
    if case == "wrong_mchid":
        return notifier.build(notifier.transaction(payment, mchid="1999999999"))
    if case == "wrong_amount":
        amount = {"total": payment.amount_fen - 1, "payer_total": payment.amount_fen - 1, "currency": "CNY"}
        return notifier.build(notifier.transaction(payment, amount=amount))
    if case == "unknown_out_trade_no":
        return notifier.build(notifier.transaction(payment, out_trade_no="PY2099NOSUCHPAYMENT"))
    raise AssertionError(case)


CASES = [
    "bad_signature",
    "unknown_serial",
    "stale_timestamp",
    "tampered_ciphertext",
    "wrong_apiv3_key",
    "wrong_appid",
    "wrong_mchid",
    "wrong_amount",
    "unknown_out_trade_no",
]


@pytest.mark.django_db
@pytest.mark.parametrize("case", CASES)
def test_each_failed_check_changes_nothing_and_asks_for_a_retry(user_api, gateways, case, caplog):
    payment = _pending_payment(user_api)
    notifier = WeChatNotifier(gateways)
    headers, body = _case(notifier, payment, case)

    with caplog.at_level(logging.WARNING):
        response = notifier.post(Client(), headers, body)

    assert response.status_code >= 400, response.content
    # a refusal is the inbox's warning, not a server error in django.request's log (WeChat's FAIL is a 500)
    assert not [r for r in caplog.records if r.name == "django.request" and r.levelno >= logging.ERROR]
    assert any(r.name == "payments.inbox" and r.levelno == logging.WARNING for r in caplog.records)
    assert response.json()["code"] == "FAIL"
    _unchanged(payment)
    row = GatewayNotification.objects.latest("id")
    assert bytes(row.body) == body and row.error and row.processed_at is None  # the evidence is kept
    assert row.event_id is None and not row.duplicate  # not claimed: a retry can still apply it
    # refused in processing, after verification: what verification established is kept with the error
    # a foreign app or merchant id or amount verifies (it is signed) and is refused by the trust checks
    verified = case in ("wrong_amount", "unknown_out_trade_no", "wrong_appid", "wrong_mchid")
    assert row.verified == verified and bool(row.parsed) == verified and bool(row.event_type) == verified
    if case in ("wrong_appid", "wrong_mchid", "wrong_amount"):
        assert row.error.startswith("field_mismatch:"), row.error


@pytest.mark.django_db
def test_a_valid_notification_applies_once_and_duplicates_are_acknowledged(user_api, gateways):
    payment = _pending_payment(user_api)
    notifier = WeChatNotifier(gateways)
    headers, body = notifier.build(notifier.transaction(payment), notify_id="EV-1")

    first = notifier.post(Client(), headers, body)
    second = notifier.post(Client(), headers, body)

    assert first.status_code == second.status_code == 204
    payment.refresh_from_db()
    assert payment.status == "succeeded" and payment.order.status == "paid"
    assert PaymentEvent.objects.filter(payment=payment, action="paid").count() == 1
    rows = GatewayNotification.objects.filter(reference=payment.payment_no).order_by("id")
    assert [r.duplicate for r in rows] == [False, True]


@pytest.mark.django_db
def test_a_crash_while_applying_rolls_back_everything_and_keeps_the_evidence(user_api, gateways, monkeypatch):
    payment = _pending_payment(user_api)
    notifier = WeChatNotifier(gateways)
    headers, body = notifier.build(notifier.transaction(payment), notify_id="EV-CRASH")

    def crash(**kwargs):  # after the payment's transition was written, before the order's
        raise RuntimeError("boom")

    monkeypatch.setattr("payments.services.order_mark_paid", crash)
    with pytest.raises(RuntimeError):
        notifier.post(Client(), headers, body)

    _unchanged(payment)
    row = GatewayNotification.objects.get(reference=payment.payment_no)
    assert bytes(row.body) == body and row.verified and row.parsed and "boom" in row.error
    assert row.event_id is None and row.processed_at is None and row.payment_id is None
    monkeypatch.undo()  # the gateway's retry applies it
    assert notifier.post(Client(), headers, body).status_code == 204
    payment.refresh_from_db()
    assert payment.status == "succeeded" and payment.order.status == "paid"


@pytest.mark.django_db
def test_an_event_type_we_do_not_handle_is_acknowledged_without_change(user_api, gateways):
    payment = _pending_payment(user_api)
    notifier = WeChatNotifier(gateways)
    headers, body = notifier.build(
        {"mchid": notifier.creds["mchid"]}, event_type="PAYSCORE.USER_OPEN_SERVICE", original_type="payscore"
    )
    assert notifier.post(Client(), headers, body).status_code == 204
    _unchanged(payment)


@pytest.mark.django_db(transaction=True)
def test_concurrent_duplicates_make_exactly_one_transition(user_api, gateways):
    payment = _pending_payment(user_api)
    notifier = WeChatNotifier(gateways)
    same = notifier.build(notifier.transaction(payment), notify_id="EV-CONCURRENT")
    # the same event delivered 6 times at once, plus 2 other events for the same trade (a retry
    # with another id, as after a gateway failover)
    others = [notifier.build(notifier.transaction(payment)) for _ in range(2)]

    responses = run_concurrently(
        lambda hb: notifier.post(Client(), *hb), args_list=[(same,)] * 6 + [(o,) for o in others]
    )

    assert [r.status_code for r in responses] == [204] * 8, [getattr(r, "content", r) for r in responses]
    assert PaymentEvent.objects.filter(payment=payment, action="paid").count() == 1
    assert OrderEvent.objects.filter(order=payment.order, action="paid").count() == 1
    assert Order.objects.get(pk=payment.order_id).status == "paid"
    assert GatewayNotification.objects.filter(reference=payment.payment_no, duplicate=True).count() == 5


def _wallet_topup_payment(user_api) -> Payment:
    order = user_api.post("/api/v1/wallet/topups/", {"amount_fen": 1_000}, format="json").json()
    started = user_api.post(
        "/api/v1/payments/", {"order_no": order["order_no"], "channel": "wechat_native"}, format="json"
    )
    assert started.status_code == 201, started.content
    return Payment.objects.get(payment_no=started.json()["payment_no"])


@pytest.mark.django_db(transaction=True)
def test_duplicate_pairs_of_wallet_top_ups_in_parallel_credit_each_wallet_once(user_api, gateways):
    """The one-statement path (claim by INSERT ... ON CONFLICT, lock by one SELECT, transitions and the wallet
    credit in one statement each): every notification delivered twice at once, several top-ups at a time."""
    from wallets.models import Wallet, WalletTransaction

    wallet_get_or_create(user_id=user_api.user.pk)
    payments = [_wallet_topup_payment(user_api) for _ in range(4)]
    notifier = WeChatNotifier(gateways)
    pairs = [notifier.build(notifier.transaction(p), notify_id=f"EV-PAIR-{p.pk}") for p in payments]

    responses = run_concurrently(lambda hb: notifier.post(Client(), *hb), args_list=[(hb,) for hb in pairs * 2])

    assert [getattr(r, "status_code", r) for r in responses] == [204] * 8
    for payment in payments:
        assert PaymentEvent.objects.filter(payment=payment, action="paid").count() == 1
        assert OrderEvent.objects.filter(order=payment.order_id, action="paid").count() == 1
        rows = GatewayNotification.objects.filter(reference=payment.payment_no)
        assert sorted(r.duplicate for r in rows) == [False, True]
    credits = WalletTransaction.objects.filter(type="topup", reference__in=[p.order.order_no for p in payments])
    assert credits.count() == 4
    wallet = Wallet.objects.get(user_id=user_api.user.pk)
    assert wallet.balance_fen == 4_000 and wallet.version == 4
    ledger = list(WalletTransaction.objects.filter(wallet=wallet).order_by("id"))
    assert [(t.balance_before_fen, t.balance_after_fen) for t in ledger] == [
        (i * 1_000, (i + 1) * 1_000) for i in range(4)
    ]


@pytest.mark.django_db(transaction=True)
def test_notification_racing_a_sync_ends_in_one_transition(user_api, gateways):
    from core.audit import Actor
    from payments.services import payment_sync

    payment = _pending_payment(user_api)
    gateways.fault("wechat.notify", "drop")
    gateways.control(f"wechat/transactions/{payment.payment_no}/pay", json={})
    notifier = WeChatNotifier(gateways)
    headers, body = notifier.build(notifier.transaction(payment))

    results = run_concurrently(
        lambda kind: (
            notifier.post(Client(), headers, body)
            if kind == "notify"
            else payment_sync(payment_no=payment.payment_no, actor=Actor.system("test"))
        ),
        args_list=[("notify",), ("sync",), ("sync",), ("notify",)],
    )

    assert not [r for r in results if isinstance(r, Exception)], results
    assert PaymentEvent.objects.filter(payment=payment, action="paid").count() == 1


def _notification_sql(notifier, headers, body):
    """The SQL of one notification through the whole Django request (the inbox INSERT in autocommit)."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as captured:
        response = notifier.post(Client(), headers, body)
    assert response.status_code == 204, response.content
    return [q["sql"].split(None, 1)[0].upper() for q in captured.captured_queries]


# A regression guard on the hot path (it was 27 statements in 3 transactions, then 14 in 2): ONE transaction
# stores the verified notification while claiming its event id, locks the payment and its order with one
# SELECT, writes each transition with its event in one statement and credits the wallet in one. More
# statements means a savepoint, a second save or lock crept back.
MAX_STATEMENTS = {"wallet_topup": 7, "locker_rental": 16}  # 7: BEGIN, INSERT, SELECT, 3 x WITH, COMMIT


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("kind", list(MAX_STATEMENTS))
def test_an_applied_notification_stays_within_its_statement_budget(user_api, gateways, kind):
    if kind == "wallet_topup":
        wallet_get_or_create(user_id=user_api.user.pk)  # the usual case: the wallet exists
        payment = _wallet_topup_payment(user_api)
    else:
        payment = _pending_payment(user_api)
    notifier = WeChatNotifier(gateways)
    headers, body = notifier.build(notifier.transaction(payment))

    sql = _notification_sql(notifier, headers, body)

    assert len(sql) <= MAX_STATEMENTS[kind], sql
    assert sql[:2] == ["BEGIN", "INSERT"]  # verified, then stored by the claim: one transaction
    assert sql.count("BEGIN") == sql.count("COMMIT") == 1  # one processing transaction
    assert sql.count("SAVEPOINT") <= (0 if kind == "wallet_topup" else 2)
    payment.refresh_from_db()
    assert payment.status == "succeeded" and payment.order.status == "paid"
    row = GatewayNotification.objects.get(reference=payment.payment_no)
    assert row.verified and row.parsed and row.event_id and row.processed_at and row.payment_id == payment.pk
    assert not row.duplicate and row.error == ""
    # and a second delivery is still a duplicate
    assert notifier.post(Client(), headers, body).status_code == 204
    assert PaymentEvent.objects.filter(payment=payment, action="paid").count() == 1
    assert GatewayNotification.objects.filter(reference=payment.payment_no, duplicate=True).count() == 1


# The tables every paid notification writes. An UPDATE that changes the status writes a new entry into every
# index of its table, so an index no query uses is a cost on the hot path: Django's varchar_pattern_ops twin
# of a unique=/db_index= text column (payments 0010, orders 0007) is one.
HOT_TABLES = ("payments_payment", "orders_order", "payments_gatewaynotification", "wallets_wallet")


@pytest.mark.django_db
def test_the_tables_a_notification_writes_carry_no_pattern_ops_index():
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT indexname FROM pg_indexes WHERE tablename = ANY(%s) AND indexdef LIKE %s",
            [list(HOT_TABLES), "%pattern_ops%"],
        )
        assert cursor.fetchall() == []
        cursor.execute(
            "SELECT indexdef FROM pg_indexes WHERE indexname = ANY(%s)", [["payment_no_unique", "order_no_unique"]]
        )
        assert sorted(row[0].split(" USING ")[0].split()[1] for row in cursor.fetchall()) == ["UNIQUE", "UNIQUE"]
