"""Back-office pages: dashboard figures and charts, CSV exports, the global audit log, the payment
timeline and the inbox replay."""

import csv
import io
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from core.audit import Actor
from finance.backoffice import auditlog
from orders.models import Order, OrderEvent
from orders.tests.factories import RentalOrderFactory
from payments.models import GatewayNotification, Payment, PaymentEvent
from refunds.models import Refund
from refunds.services import _refund_mark_processing, refund_approve, refund_reject
from refunds.tests.test_admin_helpers import (
    abnormal_refund,
    paid_wallet_order,
    paid_wechat_order,
    requested_refund,
    staff_in,
)

pytestmark = pytest.mark.django_db


def _csv(response) -> list[list[str]]:
    body = b"".join(response.streaming_content).decode()
    assert body.startswith("\ufeff")  # a byte-order mark: Excel then reads UTF-8 (¥, Chinese) right
    return list(csv.reader(io.StringIO(body.removeprefix("\ufeff"))))


# --- dashboard ---------------------------------------------------------------------------------


def test_dashboard_figures_per_window_and_channel(client, celery_eager, django_capture_on_commit_callbacks, gateways):
    finance = staff_in("finance")
    client.force_login(finance)
    # given: two wallet rentals paid today (1000 fen each), one refunded 400 today
    (w1, _), (w2, _) = paid_wallet_order(), paid_wallet_order()
    settled = requested_refund(w1, amount_fen=400)
    with django_capture_on_commit_callbacks(execute=True):
        refund_approve(refund_id=settled.pk, approver=finance, note="ok")
    # a WeChat payment paid 3 days ago, a WeChat payment still pending today
    _, old = paid_wechat_order()
    three_days_ago = timezone.now() - timedelta(days=3)
    Payment.objects.filter(pk=old.pk).update(created_at=three_days_ago, paid_at=three_days_ago)
    pending_order = RentalOrderFactory()
    Payment.objects.create(payment_no="PYPENDING1", order=pending_order, channel="wechat_native", amount_fen=1000)
    # queues: one request waiting (300), one abnormal, one order past expiry
    requested_refund(w2, amount_fen=300)
    abnormal_refund(paid_wechat_order()[0])
    stuck = RentalOrderFactory()
    Order.objects.filter(pk=stuck.pk).update(expires_at=timezone.now() - timedelta(minutes=1))

    response = client.get(reverse("admin:backoffice_dashboard"))

    assert response.status_code == 200
    today, week, month = response.context["windows"]
    by = {c.channel: c for c in today.channels}
    assert (by["wallet"].paid_fen, by["wallet"].paid_count, by["wallet"].refunded_fen) == (2000, 2, 400)
    # today: the abnormal refund's WeChat payment (paid now) succeeded, the pending one did not
    assert (by["wechat_native"].paid_fen, by["wechat_native"].started, by["wechat_native"].succeeded) == (1000, 2, 1)
    assert by["wechat_native"].success_rate == "50.0%" and by["alipay_page"].success_rate == "-"
    assert today.paid_fen == 3000 and today.refunded_fen == 400 and today.success_rate == "75.0%"
    assert week.paid_fen == 4000 and month.paid_fen == 4000
    assert {c.channel: c.started for c in week.channels}["wechat_native"] == 3
    assert response.context["queues"] == {
        "awaiting_count": 1,
        "awaiting_fen": 300,
        "abnormal_count": 1,
        "abnormal_fen": 1000,
        "stuck_orders": 1,
        "overtime_owed_count": 0,
        "overtime_owed_fen": 0,
        "gateway_unknown_count": 0,
        "gateway_unknown_fen": 0,
    }
    page = response.content.decode()
    assert page.count("<svg") >= 2 and "<script src=" not in page.split("<svg")[1]
    assert "<title>Wallet: ¥20.00</title>" in page and "<title>Wallet: ¥4.00</title>" in page  # bar tooltips
    wallet_row = page.split('data-channel="wallet"')[1].split("</tr>")[0]
    assert ">¥20.00</td>" in wallet_row and ">¥4.00</td>" in wallet_row and "2000" not in wallet_row
    assert "<div>¥3.00</div>" in page and "<div>¥10.00</div>" in page  # the queues' amounts
    stuck_list = client.get(reverse("admin:orders_order_changelist"), {"stuck": "yes"})
    assert [o.pk for o in stuck_list.context["cl"].result_list] == [stuck.pk]


def test_index_links_to_the_back_office_per_role(client):
    client.force_login(staff_in("finance"))
    page = client.get(reverse("admin:index")).content.decode()
    assert reverse("admin:backoffice_dashboard") in page and reverse("admin:backoffice_export") in page
    assert reverse("admin:refunds_refund_request") not in page
    client.force_login(staff_in("support"))
    page = client.get(reverse("admin:index")).content.decode()
    assert reverse("admin:refunds_refund_request") in page and reverse("admin:backoffice_export") not in page


# --- CSV exports -------------------------------------------------------------------------------


def test_payments_csv_covers_the_date_range_only(client):
    client.force_login(staff_in("finance"))
    order, payment = paid_wallet_order()
    _, outside = paid_wechat_order()
    Payment.objects.filter(pk=outside.pk).update(created_at=timezone.now() - timedelta(days=10))
    today = timezone.localdate()
    response = client.get(
        reverse("admin:backoffice_export"),
        {"dataset": "payments", "date_from": (today - timedelta(days=1)).isoformat(), "date_to": today.isoformat()},
    )
    assert response.status_code == 200 and response.streaming
    assert response["Content-Disposition"] == (
        f'attachment; filename="payments_{today - timedelta(days=1):%Y%m%d}_{today:%Y%m%d}.csv"'
    )
    rows = _csv(response)
    assert rows[0] == [
        "payment_no",
        "order_no",
        "channel",
        "channel_code",
        "status",
        "status_code",
        "amount",
        "amount_fen",
        "refunded",
        "refunded_fen",
        "gateway_trade_no",
        "flag",
        "created_at",
        "paid_at",
    ]
    # labels for people beside codes for programs, as yuan beside fen
    labels = [payment.payment_no, order.order_no, "Wallet", "wallet", "Succeeded", "succeeded"]
    assert [r[:12] for r in rows[1:]] == [[*labels, "¥10.00", "1000", "¥0.00", "0", "", ""]]
    assert rows[1][12].endswith("+08:00")  # times in the site's time zone


def test_refunds_csv_quotes_formulas_and_names_the_staff(client):
    finance = staff_in("finance", username="fin-a")
    support = staff_in("support", username="sup-a")
    client.force_login(finance)
    order, payment = paid_wallet_order()
    refund = requested_refund(order, by=support, amount_fen=250, reason='=HYPERLINK("http://x")')
    refund_reject(refund_id=refund.pk, approver=finance, note="-not eligible")
    today = timezone.localdate().isoformat()
    rows = _csv(
        client.get(reverse("admin:backoffice_export"), {"dataset": "refunds", "date_from": today, "date_to": today})
    )
    assert len(rows) == 2
    row = dict(zip(rows[0], rows[1], strict=True))
    assert row["refund_no"] == refund.refund_no and row["payment_no"] == payment.payment_no
    assert (row["channel"], row["status"], row["amount_fen"], row["source"]) == ("Wallet", "Rejected", "250", "Staff")
    assert (row["channel_code"], row["status_code"], row["source_code"]) == ("wallet", "rejected", "staff")
    assert (row["requested_by"], row["approved_by"]) == ("sup-a", "fin-a")
    assert row["reason"] == '\'=HYPERLINK("http://x")' and row["decision_note"] == "'-not eligible"
    assert row["decided_at"].startswith(timezone.localdate().isoformat()[:4])


def test_ledger_csv_has_signed_amounts_and_balances(client):
    client.force_login(staff_in("finance"))
    order, payment = paid_wallet_order(fen=5_000)
    today = timezone.localdate().isoformat()
    rows = _csv(
        client.get(reverse("admin:backoffice_export"), {"dataset": "ledger", "date_from": today, "date_to": today})
    )
    assert rows[0][3:12] == [
        "type",
        "type_code",
        "amount",
        "amount_fen",
        "balance_before",
        "balance_before_fen",
        "balance_after",
        "balance_after_fen",
        "reference",
    ]
    assert [r[3:12] for r in rows[1:]] == [
        ["Wallet top-up", "topup", "¥50.00", "5000", "¥0.00", "0", "¥50.00", "5000", rows[1][11]],
        ["Payment", "payment", "-¥10.00", "-1000", "¥50.00", "5000", "¥40.00", "4000", payment.payment_no],
    ]
    assert rows[1][2] == order.user.username


def test_export_form_refuses_a_backwards_range(client):
    client.force_login(staff_in("finance"))
    response = client.get(
        reverse("admin:backoffice_export"), {"dataset": "payments", "date_from": "2026-02-02", "date_to": "2026-02-01"}
    )
    assert response.status_code == 200 and not response.streaming
    assert "The end date is before the start date." in response.content.decode()


# --- audit log ---------------------------------------------------------------------------------


def test_audit_log_filters_by_actor_object_action_and_date(client):
    finance = staff_in("finance")
    client.force_login(finance)
    order, payment = paid_wallet_order()
    refund = requested_refund(order, amount_fen=100)
    refund_reject(refund_id=refund.pk, approver=finance, note="dup")
    old = OrderEvent.objects.create(order=order, action="note", actor="system:test")
    OrderEvent.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(days=40))
    url = reverse("admin:backoffice_audit_log")

    def rows(**query):
        return [
            (r["e_kind"], r["e_subject"], r["e_action"], r["e_actor"]) for r in client.get(url, query).context["rows"]
        ]

    assert rows(actor=f"staff:{finance.pk}") == [("refund", refund.refund_no, "reject", f"staff:{finance.pk}")]
    assert rows(object_type="ledger", action="payment") == [
        ("ledger", payment.payment_no, "payment", f"user:{order.user_id}")
    ]
    ledger = client.get(url, {"object_type": "ledger", "action": "payment"}).context["rows"][0]
    assert ledger["e_reason"] == "-1000"
    assert rows(object_type="refund") == [
        ("refund", refund.refund_no, "reject", f"staff:{finance.pk}"),
        ("refund", refund.refund_no, "request", f"staff:{refund.requested_by_id}"),
    ]
    assert rows(action="paid") == [
        ("order", order.order_no, "paid", f"user:{order.user_id}"),
        ("payment", payment.payment_no, "paid", f"user:{order.user_id}"),
    ]
    assert rows(action="paid", object_type="payment") == [
        ("payment", payment.payment_no, "paid", f"user:{order.user_id}")
    ]
    assert {r[0] for r in rows(subject=order.order_no)} == {"order", "locker"}  # lockers name the order too
    topup = order.user.wallet.transactions.get(type="topup")
    assert rows(actor="system:") == [
        ("ledger", topup.reference, "topup", "system:t"),
        ("order", order.order_no, "note", "system:test"),
    ]
    forty_days_ago = (timezone.localdate() - timedelta(days=40)).isoformat()
    assert rows(date_from=forty_days_ago, date_to=forty_days_ago) == [("order", order.order_no, "note", "system:test")]
    assert ("order", order.order_no, "note", "system:test") not in rows(date_from=timezone.localdate().isoformat())


def test_audit_log_pages_newest_first(client, monkeypatch):
    monkeypatch.setattr(auditlog, "PAGE_SIZE", 3)
    client.force_login(staff_in("finance"))
    order, _ = paid_wallet_order()
    for i in range(5):
        OrderEvent.objects.create(order=order, action=f"n{i}", actor="system:pager")
    url = reverse("admin:backoffice_audit_log")
    first = client.get(url, {"actor": "system:pager"})
    second = client.get(url, {"actor": "system:pager", "page": "2"})
    assert [r["e_action"] for r in first.context["rows"]] == ["n4", "n3", "n2"] and first.context["has_next"]
    assert [r["e_action"] for r in second.context["rows"]] == ["n1", "n0"] and not second.context["has_next"]
    assert "actor=system%3Apager&amp;page=2" in first.content.decode()


# --- payment timeline and replay ---------------------------------------------------------------


def test_payment_timeline_merges_every_source_in_time_order(client, celery_eager, django_capture_on_commit_callbacks):
    finance = staff_in("finance")
    client.force_login(finance)
    order, payment = paid_wallet_order()
    refund = requested_refund(order, amount_fen=300)
    with django_capture_on_commit_callbacks(execute=True):
        refund_approve(refund_id=refund.pk, approver=finance, note="ok")
    GatewayNotification.objects.create(
        gateway="wechat", headers={}, body=b'{"id": "EV-<1>"}', reference=payment.payment_no, error="x"
    )
    response = client.get(reverse("admin:backoffice_payment_timeline", args=[payment.pk]))
    rows = [(r.source, r.action) for r in response.context["rows"]]
    assert rows[:2] == [("order", "create"), ("payment", "create")]
    for expected in [
        ("ledger", "Payment"),  # a ledger row by its type's label
        ("payment", "paid"),
        ("order", "paid"),
        ("refund", "request"),
        ("refund", "approve"),
        ("refund", "submit"),
        ("ledger", "Refund"),
        ("refund", "succeed"),
        ("payment", "refund"),
        ("order", "refund"),
        ("notification", "(unparsed)"),
    ]:
        assert expected in rows
    times = [r.at for r in response.context["rows"]]
    assert times == sorted(times)
    page = response.content.decode()
    assert "not verified" in page and 'class="bo-replay"' not in page  # only verified rows can be replayed
    assert "{&quot;id&quot;: &quot;EV-&lt;1&gt;&quot;}" in page  # the raw body, escaped


@pytest.mark.django_db(transaction=True)
def test_replay_reprocesses_a_stored_verified_notification(client, gateways):
    # given a WeChat refund in processing and a verified refund notification whose processing failed
    finance = staff_in("finance")
    client.force_login(finance)
    order, payment = paid_wechat_order()
    refund = requested_refund(order)
    refund_approve(refund_id=refund.pk, approver=finance, note="ok")
    _refund_mark_processing(refund_id=refund.pk)
    row = GatewayNotification.objects.create(
        gateway="wechat",
        headers={"Wechatpay-Serial": "X"},
        body=b'{"resource": "..."}',
        verified=True,
        event_type="REFUND.SUCCESS",
        reference=refund.refund_no,
        parsed={
            "trade": None,
            "refund": {
                "refund_no": refund.refund_no,
                "state": "succeeded",
                "payment_no": payment.payment_no,
                "amount_fen": refund.amount_fen,
                "total_fen": payment.amount_fen,
                "gateway_refund_id": "50300000001",
                "succeeded_at": timezone.now().isoformat(),
                "merchant_id": gateways.credentials["wechat"]["mchid"],
                "gateway_state": "SUCCESS",
                "raw": {},
            },
        },
        error="gateway_unavailable: database restarted",
    )
    timeline = reverse("admin:backoffice_payment_timeline", args=[payment.pk])
    assert 'class="bo-replay"' in client.get(timeline).content.decode()

    # when finance replays it from the payment's timeline
    response = client.post(reverse("admin:payments_gatewaynotification_replay", args=[row.pk]), {"next": timeline})

    # then the refund succeeded, the order is refunded and the row is processed without error
    assert response.status_code == 302 and response["Location"] == timeline
    refund.refresh_from_db()
    row.refresh_from_db()
    assert refund.status == "succeeded" and refund.gateway_refund_id == "50300000001"
    assert Order.objects.get(pk=order.pk).status == "refunded"
    assert row.processed_at is not None and row.error == "" and row.event_id
    assert PaymentEvent.objects.filter(payment=payment, action="refund", actor="gateway:wechat").count() == 1
    from django.contrib.admin.models import LogEntry

    assert LogEntry.objects.get(object_id=str(row.pk), change_message="replayed").user == finance
    # a second replay applies nothing twice
    client.post(reverse("admin:payments_gatewaynotification_replay", args=[row.pk]))
    assert Refund.objects.get(pk=refund.pk).status == "succeeded"
    assert PaymentEvent.objects.filter(payment=payment, action="refund").count() == 1
    assert str(Actor.gateway("wechat")) == "gateway:wechat"
