"""/metrics: the business metrics computed from the database, django-prometheus's request metrics, the
Prometheus text format (parsed here by our own strict parser and by prometheus_client's), and who may read it."""

from __future__ import annotations

import math
import re
from datetime import timedelta
from itertools import count

import pytest
from django.db import connection
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from core.tests.factories import UserFactory
from finance import metrics
from orders.models import Order
from orders.tests.factories import TopupOrderFactory
from payments.models import Channel, GatewayNotification, Payment
from refunds.models import Refund

pytestmark = pytest.mark.django_db

_numbers = count(1)

# --- A small parser of the text exposition format (version 0.0.4) ----------------------------------
_NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
_SAMPLE = re.compile(rf"^(?P<name>{_NAME})(?:\{{(?P<labels>.*)\}})? (?P<value>\S+)$")
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"(,|$)')
_SUFFIXES = {"summary": ("", "_sum", "_count"), "histogram": ("_bucket", "_sum", "_count")}


def parse(text: str) -> tuple[dict[str, str], dict[tuple[str, frozenset], float]]:
    """(type of each family, value of each (name, labels)); fails on anything malformed."""
    assert text.endswith("\n")
    types: dict[str, str] = {}
    helped: set[str] = set()
    samples: dict[tuple[str, frozenset], float] = {}
    for line in text.splitlines():
        if line.startswith("# HELP "):
            name = line.split(" ", 3)[2]
            assert re.fullmatch(_NAME, name), line
            helped.add(name)
        elif line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ")
            assert kind in ("counter", "gauge", "summary", "histogram", "untyped"), line
            assert name not in types, f"second TYPE for {name}"
            types[name] = kind
        else:
            match = _SAMPLE.match(line)
            assert match, f"not a sample line: {line!r}"
            name, label_text = match["name"], match["labels"] or ""
            labels = dict((k, v) for k, v, _ in _LABEL.findall(label_text))
            rebuilt = ",".join(f'{k}="{v}"' for k, v in labels.items())
            assert rebuilt == label_text, f"malformed labels: {line!r}"
            family = next(
                (f for f, k in types.items() for s in _SUFFIXES.get(k, ("",)) if name == f + s),
                None,
            )
            assert family is not None, f"sample {name} before (or without) its TYPE line"
            key = (name, frozenset(labels.items()))
            assert key not in samples, f"duplicate sample {line!r}"
            samples[key] = float(match["value"])  # float() accepts NaN and +Inf as Prometheus writes them
    assert helped == set(types), "every family has HELP and TYPE"
    return types, samples


def value(samples: dict, name: str, **labels: str) -> float:
    return samples[(name, frozenset(labels.items()))]


def scrape(client, **extra) -> tuple[dict[str, str], dict]:
    response = client.get("/metrics", **extra)
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/plain; version=")
    text = response.content.decode()
    list(text_string_to_metric_families(text))  # prometheus_client's own parser reads it too
    return parse(text)


# --- Data ------------------------------------------------------------------------------------------
def payment(*, channel: str, status: str, amount_fen: int = 1000, order: Order | None = None) -> Payment:
    order = order or TopupOrderFactory(amount_fen=amount_fen)
    return Payment.objects.create(
        payment_no=f"PYM{next(_numbers):08d}", order=order, channel=channel, status=status, amount_fen=amount_fen
    )


def notification(*, gateway: str = "wechat", verified: bool = True, lag: float | None = None, **fields):
    row = GatewayNotification.objects.create(gateway=gateway, body=b"{}", verified=verified, **fields)
    if lag is not None:
        received = timezone.now() - timedelta(hours=1)
        GatewayNotification.objects.filter(pk=row.pk).update(
            received_at=received, processed_at=received + timedelta(seconds=lag)
        )
    return row


def refund(*, status: str, age: timedelta, stage_field: str | None = None, amount_fen: int = 100) -> Refund:
    paid = payment(channel=Channel.WECHAT_JSAPI, status=Payment.Status.SUCCEEDED)
    row = Refund.objects.create(
        refund_no=f"RFM{next(_numbers):08d}",
        payment=paid,
        order=paid.order,
        amount_fen=amount_fen,
        reason="test",
        status=status,
        source=Refund.Source.STAFF,
    )
    at = timezone.now() - age
    Refund.objects.filter(pk=row.pk).update(created_at=at, **({stage_field: at} if stage_field else {}))
    return row


# --- The format -----------------------------------------------------------------------------------
def test_empty_database_gives_every_family_with_zeros(client):
    types, samples = scrape(client)

    assert types["locker_payments"] == "gauge"
    assert types["locker_notification_verify_failures_total"] == "counter"
    assert types["locker_notification_apply_lag_seconds"] == "summary"
    assert "locker_reconciliation_discrepancies" in types
    # every channel x status exists (an alert on absence is never needed), at zero
    assert value(samples, "locker_payments", channel="wallet", status="succeeded") == 0
    assert sum(1 for name, _ in samples if name == "locker_payments") == len(Channel.values) * len(
        Payment.Status.values
    )
    assert value(samples, "locker_notification_verify_failures_total", gateway="alipay") == 0
    assert value(samples, "locker_notification_apply_lag_seconds_count") == 0
    assert math.isnan(value(samples, "locker_notification_apply_lag_seconds", quantile="0.5"))
    assert value(samples, "locker_orders_stuck", kind="locker_rental") == 0


def test_labels_and_help_are_escaped(client, settings):
    """A label value with a quote, a backslash and a newline stays one sample on one line."""
    settings.REFUND_STUCK_ALERT_HOURS = 24
    GatewayNotification.objects.create(gateway='we"ird\\\n', body=b"{}", verified=False)

    text = client.get("/metrics").content.decode()

    assert 'locker_notification_verify_failures_total{gateway="we\\"ird\\\\\\n"} 1.0' in text.splitlines()
    _, samples = parse(text)
    assert value(samples, "locker_notification_verify_failures_total", gateway='we\\"ird\\\\\\n') == 1


def test_parser_rejects_malformed_text():
    with pytest.raises(AssertionError):
        parse('# HELP a x\n# TYPE a gauge\na{b="1",} 1\n')
    with pytest.raises(AssertionError):
        parse("# HELP a x\n# TYPE a gauge\nb 1\n")


# --- The numbers reflect real rows ----------------------------------------------------------------
def test_payments_by_channel_and_status(client):
    payment(channel=Channel.WECHAT_JSAPI, status=Payment.Status.SUCCEEDED, amount_fen=1200)
    payment(channel=Channel.WECHAT_JSAPI, status=Payment.Status.SUCCEEDED, amount_fen=800)
    payment(channel=Channel.WECHAT_JSAPI, status=Payment.Status.PENDING)
    payment(channel=Channel.ALIPAY_PAGE, status=Payment.Status.CLOSED, amount_fen=50)
    payment(channel=Channel.WALLET, status=Payment.Status.SUCCEEDED, amount_fen=7)

    _, samples = scrape(client)

    assert value(samples, "locker_payments", channel="wechat_jsapi", status="succeeded") == 2
    assert value(samples, "locker_payments_amount_fen", channel="wechat_jsapi", status="succeeded") == 2000
    assert value(samples, "locker_payments", channel="wechat_jsapi", status="pending") == 1
    assert value(samples, "locker_payments", channel="alipay_page", status="closed") == 1
    assert value(samples, "locker_payments_amount_fen", channel="alipay_page", status="closed") == 50
    assert value(samples, "locker_payments", channel="wallet", status="succeeded") == 1
    assert value(samples, "locker_payments", channel="alipay_page", status="succeeded") == 0


def test_notification_failures_and_apply_lag(client):
    notification(gateway="wechat", verified=False, error="signature_invalid: bad signature")
    notification(gateway="wechat", verified=False, error="signature_invalid: bad serial")
    notification(gateway="alipay", verified=False, error="signature_invalid: bad sign")
    notification(gateway="wallyt", verified=True, error="amount_mismatch: 1 != 2")  # verified, not applied
    for lag in (1.0, 2.0, 10.0):
        notification(gateway="wechat", lag=lag)
    notification(gateway="wechat", lag=500.0, duplicate=True)  # a duplicate was not applied: no lag
    old = notification(gateway="alipay", lag=900.0)  # outside the 24 h window
    GatewayNotification.objects.filter(pk=old.pk).update(received_at=timezone.now() - timedelta(days=2))

    _, samples = scrape(client)

    assert value(samples, "locker_notification_verify_failures_total", gateway="wechat") == 2
    assert value(samples, "locker_notification_verify_failures_total", gateway="alipay") == 1
    assert value(samples, "locker_notification_verify_failures_total", gateway="wallyt") == 0
    assert value(samples, "locker_notifications_received_total", gateway="wechat") == 6
    assert value(samples, "locker_notifications_unapplied", gateway="wallyt") == 1
    assert value(samples, "locker_notification_apply_lag_seconds_count") == 3
    assert value(samples, "locker_notification_apply_lag_seconds_sum") == pytest.approx(13.0)
    assert value(samples, "locker_notification_apply_lag_seconds", quantile="0.5") == pytest.approx(2.0)
    # percentile_cont interpolates: 2 + 0.8 * (10 - 2)
    assert value(samples, "locker_notification_apply_lag_seconds", quantile="0.9") == pytest.approx(8.4)
    assert value(samples, "locker_notification_apply_lag_max_seconds") == pytest.approx(10.0)


def test_stuck_orders(client):
    now = timezone.now()
    TopupOrderFactory(expires_at=now - timedelta(hours=2))
    TopupOrderFactory(expires_at=now - timedelta(minutes=1))
    TopupOrderFactory(expires_at=now + timedelta(minutes=10))  # still payable
    TopupOrderFactory(expires_at=now - timedelta(hours=5), status=Order.Status.PAID)
    TopupOrderFactory(expires_at=now - timedelta(hours=5), status=Order.Status.CANCELLED)

    _, samples = scrape(client)

    assert value(samples, "locker_orders_stuck", kind="wallet_topup") == 2
    assert value(samples, "locker_orders_stuck", kind="locker_rental") == 0
    assert value(samples, "locker_orders_stuck_oldest_seconds", kind="wallet_topup") == pytest.approx(7200, abs=60)


def test_refunds_open_and_overdue(client, settings):
    settings.REFUND_STUCK_ALERT_HOURS = 24
    day = timedelta(hours=25)
    refund(status=Refund.Status.REQUESTED, age=day, amount_fen=300)  # awaiting approval for a day
    refund(status=Refund.Status.REQUESTED, age=timedelta(hours=1), amount_fen=200)
    refund(status=Refund.Status.APPROVED, age=day, stage_field="decided_at")
    refund(status=Refund.Status.PROCESSING, age=day, stage_field="submitted_at")
    refund(status=Refund.Status.PROCESSING, age=timedelta(minutes=5), stage_field="submitted_at")
    refund(status=Refund.Status.ABNORMAL, age=day, stage_field="submitted_at")
    refund(status=Refund.Status.SUCCEEDED, age=day, stage_field="submitted_at")  # finished: not counted

    _, samples = scrape(client)

    assert value(samples, "locker_refunds_open", status="requested") == 2
    assert value(samples, "locker_refunds_open_amount_fen", status="requested") == 500
    assert value(samples, "locker_refunds_overdue", status="requested") == 1
    assert value(samples, "locker_refunds_overdue", status="approved") == 1
    assert value(samples, "locker_refunds_open", status="processing") == 2
    assert value(samples, "locker_refunds_overdue", status="processing") == 1
    assert value(samples, "locker_refunds_overdue", status="abnormal") == 1
    assert ("locker_refunds_open", frozenset({("status", "succeeded")})) not in samples


def test_missing_discrepancy_table_does_not_break_the_scrape(client, monkeypatch):
    """The bill reconciliation model may exist before its table: the view answers, the transaction lives."""

    class Ghost:
        class objects:  # mimics a manager
            @staticmethod
            def order_by():
                with connection.cursor() as cursor:
                    cursor.execute("SELECT gateway FROM refunds_no_such_table")
                raise AssertionError("unreachable")

    monkeypatch.setattr(metrics, "_model_or_none", lambda *_: Ghost)
    payment(channel=Channel.WALLET, status=Payment.Status.SUCCEEDED)

    types, samples = scrape(client)

    assert "locker_reconciliation_discrepancies" in types
    assert not [name for name, _ in samples if name == "locker_reconciliation_discrepancies"]
    assert value(samples, "locker_payments", channel="wallet", status="succeeded") == 1
    assert Payment.objects.count() == 1  # the test's transaction is still usable


def test_discrepancies_by_gateway_kind_and_status(client):
    from django.apps import apps

    model = apps.get_model("finance", "BillDiscrepancy")
    now = timezone.now()
    rows = [
        ("wechat", "amount_mismatch", "open"),
        ("wechat", "amount_mismatch", "open"),
        ("wechat", "missing_local", "resolved"),
        ("alipay", "missing_remote", "open"),
    ]
    for i, (gateway, kind, status) in enumerate(rows):
        model.objects.create(
            bill_date=now.date(),
            gateway=gateway,
            kind=kind,
            status=status,
            reference=f"PYD{i}",
            first_seen=now,
            last_seen=now,
        )

    _, samples = scrape(client)

    name = "locker_reconciliation_discrepancies"
    assert value(samples, name, gateway="wechat", kind="amount_mismatch", status="open") == 2
    assert value(samples, name, gateway="wechat", kind="missing_local", status="resolved") == 1
    assert value(samples, name, gateway="alipay", kind="missing_remote", status="open") == 1
    assert len([n for n, _ in samples if n == name]) == 3


def test_query_count_is_bounded(client, django_assert_max_num_queries):
    for _ in range(5):
        payment(channel=Channel.WECHAT_NATIVE, status=Payment.Status.SUCCEEDED)
        notification(lag=1.0)
        refund(status=Refund.Status.REQUESTED, age=timedelta(hours=1))

    with django_assert_max_num_queries(10):
        response = client.get("/metrics")

    assert response.status_code == 200


# --- Who may read it ------------------------------------------------------------------------------
def test_loopback_without_token_is_allowed(client, settings):
    settings.METRICS_TOKEN = ""

    assert client.get("/metrics", REMOTE_ADDR="127.0.0.1").status_code == 200
    assert client.get("/metrics", REMOTE_ADDR="::1").status_code == 200


def test_remote_without_token_is_forbidden(client, settings):
    settings.METRICS_TOKEN = ""

    assert client.get("/metrics", REMOTE_ADDR="10.1.2.3").status_code == 403
    # a local reverse proxy forwards the world's requests from loopback
    assert client.get("/metrics", REMOTE_ADDR="127.0.0.1", HTTP_X_FORWARDED_FOR="203.0.113.9").status_code == 403


def test_token_is_required_when_set(client, settings):
    settings.METRICS_TOKEN = "s3cret-scrape-token"

    assert client.get("/metrics", REMOTE_ADDR="10.1.2.3").status_code == 403
    assert client.get("/metrics", REMOTE_ADDR="127.0.0.1").status_code == 403  # loopback needs it too
    wrong = client.get("/metrics", REMOTE_ADDR="10.1.2.3", HTTP_AUTHORIZATION="Bearer nope")
    assert wrong.status_code == 403
    assert b"locker_" not in wrong.content
    ok = client.get("/metrics", REMOTE_ADDR="10.1.2.3", HTTP_AUTHORIZATION="Bearer s3cret-scrape-token")
    assert ok.status_code == 200
    assert b"# TYPE locker_payments gauge" in ok.content


def test_a_user_session_does_not_open_it(client, settings):
    settings.METRICS_TOKEN = "s3cret-scrape-token"
    client.force_login(UserFactory(is_staff=True, is_superuser=True))

    assert client.get("/metrics", REMOTE_ADDR="10.1.2.3").status_code == 403


def test_only_get(client):
    assert client.post("/metrics").status_code == 405


# --- Seed 001's key metrics ------------------------------------------------------------------------
def test_payment_success_failure_and_duration(client):
    """Payment success rate and average payment time: counters and a histogram, by channel."""
    from payments.models import PaymentEvent

    for took in (3, 45, 400):
        row = payment(channel=Channel.WECHAT_NATIVE, status=Payment.Status.SUCCEEDED)
        Payment.objects.filter(pk=row.pk).update(paid_at=row.created_at + timedelta(seconds=took))
    payment(channel=Channel.WECHAT_NATIVE, status=Payment.Status.PENDING)
    lost = payment(channel=Channel.ALIPAY_PAGE, status=Payment.Status.FAILED)
    PaymentEvent.objects.create(payment=lost, action="failed", from_status="pending", to_status="failed", actor="t")

    _, samples = scrape(client)

    assert value(samples, "locker_payments_created_total", channel="wechat_native") == 4
    assert value(samples, "locker_payments_succeeded_total", channel="wechat_native") == 3
    assert value(samples, "locker_payments_failed_total", channel="alipay_page") == 1
    assert value(samples, "locker_payments_failed_total", channel="wechat_native") == 0
    name = "locker_payment_duration_seconds"
    assert value(samples, f"{name}_bucket", channel="wechat_native", le="5.0") == 1
    assert value(samples, f"{name}_bucket", channel="wechat_native", le="60.0") == 2
    assert value(samples, f"{name}_bucket", channel="wechat_native", le="300.0") == 2
    assert value(samples, f"{name}_bucket", channel="wechat_native", le="600.0") == 3
    assert value(samples, f"{name}_bucket", channel="wechat_native", le="+Inf") == 3
    assert value(samples, f"{name}_count", channel="wechat_native") == 3
    assert value(samples, f"{name}_sum", channel="wechat_native") == pytest.approx(448, abs=0.01)
    assert value(samples, f"{name}_count", channel="wallet") == 0


def test_refund_rate_and_webhook_delivery(client):
    """Refund rate (refunds asked for per payment) and webhook delivery success (applied per received)."""
    refund(status=Refund.Status.REQUESTED, age=timedelta(hours=1), amount_fen=300)
    done = refund(status=Refund.Status.SUCCEEDED, age=timedelta(hours=1), amount_fen=200)
    Refund.objects.filter(pk=done.pk).update(succeeded_at=timezone.now())
    notification(gateway="wechat", lag=1.0)
    notification(gateway="wechat", lag=1.0, duplicate=True)
    notification(gateway="wechat", verified=False, error="signature_invalid")

    _, samples = scrape(client)

    assert value(samples, "locker_refunds_requested_total", channel="wechat_jsapi") == 2
    assert value(samples, "locker_refunds_requested_amount_fen_total", channel="wechat_jsapi") == 500
    assert value(samples, "locker_refunds_succeeded_total", channel="wechat_jsapi") == 1
    assert value(samples, "locker_refunds_requested_total", channel="wallet") == 0
    assert value(samples, "locker_notifications_received_total", gateway="wechat") == 3
    assert value(samples, "locker_notifications_applied_total", gateway="wechat") == 1


def test_request_and_database_metrics_from_django_prometheus(client, user_api):
    """API error rate: requests and responses by view, method and status; database queries."""
    assert user_api.get("/api/v1/orders/").status_code == 200
    assert user_api.get("/api/v1/orders/NOPE/").status_code == 404

    types, samples = scrape(client)

    responses = "django_http_responses_total_by_status_view_method_total"
    assert types[responses] == "counter"
    by_status = {dict(labels)["status"] for name, labels in samples if name == responses}
    assert {"200", "404"} <= by_status
    assert types["django_http_requests_latency_seconds_by_view_method"] == "histogram"
    assert sum(v for (name, _), v in samples.items() if name == "django_db_execute_total") > 0


def test_openmetrics_when_the_scraper_asks_for_it(client):
    response = client.get("/metrics", HTTP_ACCEPT="application/openmetrics-text; version=1.0.0")

    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/openmetrics-text")
    assert response.content.decode().endswith("# EOF\n")
