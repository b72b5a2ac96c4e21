"""What an outside tester found still reading like the database after issue 13: fen in an event's
data, an order's pricing, a run's totals, a ledger entry's and a price plan's name; price plans
typed in fen; codes (``topup``, ``pending_payment``, ``wechat``) where people read labels; a link to
a user's page for someone who may not open it; a gateway's signature shown in a raw body."""

import html
import itertools
import re

import pytest
from django.contrib.auth.models import Permission
from django.urls import reverse
from django.utils import timezone

from core.admin import data_html, data_pairs, data_text
from core.logging import masked_text
from finance.models import BillRun
from finance.tests.factories import BillDiscrepancyFactory
from lockers.models import PricePlan
from orders.models import Order, OrderEvent
from payments.models import PaymentEvent
from refunds.models import RefundEvent
from refunds.services import refund_reject
from refunds.tests.test_admin_helpers import paid_wallet_order, paid_wechat_order, requested_refund, staff_in
from wallets.models import WalletTransaction

pytestmark = pytest.mark.django_db


def _text(response) -> str:
    assert response.status_code == 200, response.status_code
    return html.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", response.content.decode())))


# --- money -----------------------------------------------------------------------------------------


def test_an_events_data_is_words_and_yuan():
    data = {"amount_fen": 500, "refund_no": "RF1", "totals": {"gross_fen": 100_000, "lines": 3}, "flag": "", "ok": True}
    assert data_pairs(data) == [
        ("amount", "¥5.00"),
        ("refund no", "RF1"),
        ("totals", "(gross ¥1,000.00, lines 3)"),
        ("ok", "yes"),
    ]
    assert data_text({"balance_after_fen": -120}) == "balance after -¥1.20"
    html = str(data_html({"amount_fen": 500, "sign": "S1"}))
    assert "¥5.00" in html and "S1" not in html and "[redacted]" in html and "_fen" not in html
    assert str(data_html({})) == "-"


def test_event_pages_and_inlines_show_data_in_yuan(admin_client):
    order, payment = paid_wechat_order()
    OrderEvent.objects.create(order=order, action="note", actor="system:test", data={"amount_fen": 500})
    PaymentEvent.objects.create(payment=payment, action="note", actor="system:test", data={"refunded_fen": 250})
    refund = requested_refund(order, amount_fen=300)
    event = RefundEvent.objects.filter(refund=refund).first()
    pages = {
        "order": admin_client.get(reverse("admin:orders_order_change", args=[order.pk])),
        "payment": admin_client.get(reverse("admin:payments_payment_change", args=[payment.pk])),
        "refund": admin_client.get(reverse("admin:refunds_refund_change", args=[refund.pk])),
        "refund event": admin_client.get(reverse("admin:refunds_refundevent_change", args=[event.pk])),
        "order event": admin_client.get(
            reverse("admin:orders_orderevent_change", args=[OrderEvent.objects.filter(order=order).last().pk])
        ),
    }
    for name, response in pages.items():
        text = _text(response)
        assert "_fen" not in text and '{"' not in text and "{&quot;" not in text, name
    assert "amount ¥5.00" in _text(pages["order"]) and "refunded ¥2.50" in _text(pages["payment"])
    assert "amount ¥3.00" in _text(pages["refund"]) and "amount ¥3.00" in _text(pages["refund event"])
    # the order's pricing (the server's quote, in fen) as a sentence in yuan
    assert re.search(r"Pricing: 2 h at ¥5\.00/h \(capped at ¥[\d,.]+\) = ¥10\.00", _text(pages["order"]))
    # statuses by label in the audit trail of the order
    assert "Awaiting payment → Paid" in _text(pages["order"])


def test_a_bill_runs_settlement_check_is_a_table_in_yuan(client):
    client.force_login(staff_in("finance"))
    run = BillRun.objects.create(
        gateway="wechat",
        bill_date=timezone.localdate(),
        status="done",
        counts={"bill_payments": 2},
        totals={
            "bill": {"gross": 104_000, "refunds": 1000, "fees": 619, "net": 102_381},
            "ours": {"gross": 104_000, "refunds": 1000, "fees": 618, "net": 102_382},
            "lines": {"gross": 104_000, "refunds": 1000, "fees": 618, "net": 102_382},
            "stated": True,
            "mismatches": ["fees", "net"],
        },
    )
    text = _text(client.get(reverse("admin:finance_billrun_change", args=[run.pk])))
    assert "Settlement check, fen" not in text and '"gross"' not in text and "104000" not in text
    assert "fees ¥6.19 ¥6.18 ¥6.18" in text and "gross ¥1,040.00" in text
    assert "WeChat Pay bill of" in text and "bill payments 2" in text


def test_ledger_entries_and_price_plans_are_named_in_yuan(admin_client):
    user = paid_wallet_order(fen=1_000_000)[0].user
    entry = WalletTransaction.objects.filter(wallet__user=user, type="topup").get()
    assert str(entry) == f"Wallet top-up +¥10,000.00 ({entry.reference})"
    plan = PricePlan.objects.create(size="L", price_per_hour_fen=800, min_hours=2, cap_fen=8000)
    assert str(plan) == "Large: ¥8.00/h"
    page = _text(admin_client.get(reverse("admin:wallets_wallettransaction_change", args=[entry.pk])))
    assert "+¥10,000.00" in page and "topup +" not in page and "+10000" not in page  # title and breadcrumbs


def test_a_price_plan_is_typed_in_yuan_and_kept_in_fen(admin_client):
    url = reverse("admin:lockers_priceplan_add")
    form = admin_client.get(url).content.decode()
    assert "Price per hour (¥)" in form and "Cap (¥)" in form and "fen" not in _text(admin_client.get(url)).lower()
    made = admin_client.post(url, {"size": "L", "price_per_hour_fen": "8.50", "min_hours": "2", "cap_fen": "1,200"})
    assert made.status_code == 302, made.content.decode()[:2000]
    plan = PricePlan.objects.get(size="L")
    assert (plan.price_per_hour_fen, plan.cap_fen) == (850, 120_000)
    change = reverse("admin:lockers_priceplan_change", args=[plan.pk])
    assert 'value="8.50"' in admin_client.get(change).content.decode()  # shown back in yuan
    for bad, message in (("8.505", "at most two decimals"), ("-1", "cannot be negative"), ("abc", "in yuan")):
        refused = admin_client.post(change, {"size": "L", "price_per_hour_fen": bad, "min_hours": "2", "cap_fen": "80"})
        assert refused.status_code == 200 and message in refused.content.decode(), bad
    refused = admin_client.post(change, {"size": "L", "price_per_hour_fen": "0", "min_hours": "2", "cap_fen": "80"})
    assert refused.status_code == 200 and "priceplan_price_positive" in refused.content.decode()  # no 500
    assert PricePlan.objects.get(pk=plan.pk).price_per_hour_fen == 850


# --- labels, not codes -----------------------------------------------------------------------------


def test_labels_people_read_for_kinds_types_and_statuses(admin_client):
    assert Order.Kind.WALLET_TOPUP.label == "Wallet top-up" == WalletTransaction.Type.TOPUP.label
    assert Order.Status.PENDING_PAYMENT.label == "Awaiting payment"
    assert Order.Status.PARTIALLY_REFUNDED.label == "Partially refunded"
    paid_wallet_order()
    wallets = _text(admin_client.get(reverse("admin:wallets_wallet_changelist")))
    assert "Version" not in wallets  # the optimistic lock's counter is no one's business
    ledger = _text(admin_client.get(reverse("admin:wallets_wallettransaction_changelist")))
    assert "Wallet top-up" in ledger and "Topup" not in ledger
    dashboard = _text(admin_client.get(reverse("admin:backoffice_dashboard")))
    assert "pending_payment" not in dashboard and "awaiting payment past expiry" in dashboard


def test_discrepancies_and_runs_are_named_with_gateway_and_kind_labels(client):
    client.force_login(staff_in("finance"))
    d = BillDiscrepancyFactory(reference="PY20261130101445F0ACDA8405", our_amount_fen=1500, our_status="succeeded")
    assert str(d) == f"Wallyt {d.bill_date:%Y-%m-%d}: Settled here, in no bill PY20261130101445F0ACDA8405"
    listed = _text(client.get(reverse("admin:finance_billdiscrepancy_changelist")))
    assert "wallyt" not in listed and "missing_remote" not in listed
    assert "Wallyt" in listed and "WeChat Pay" in listed  # the gateway filter by label
    assert "ours ¥15.00 · Succeeded" in listed and "bill none" in listed
    assert (
        len(
            client.get(reverse("admin:finance_billdiscrepancy_changelist"), {"gateway": "wallyt"})
            .context["cl"]
            .result_list
        )
        == 1
    )


def test_confirmations_show_labels_and_mark_the_required_note(client):
    finance = staff_in("finance")
    client.force_login(finance)
    refund = requested_refund(paid_wallet_order()[0], amount_fen=200)
    page = client.post(
        reverse("admin:refunds_refund_changelist"), {"action": "approve_selected", "_selected_action": [refund.pk]}
    ).content.decode()
    assert re.search(r"<td>\s*Requested\s*</td>", page) and "<td>requested</td>" not in page
    assert '<label for="id_note" class="required">' in page and "Required: it is kept with the decision" in page
    d = BillDiscrepancyFactory(
        gateway="wechat",
        kind="total_mismatch",
        subject="total",
        reference=f"{timezone.localdate()}:gross",
        our_amount_fen=12_400,
        their_amount_fen=12_500,
        status="assigned",
    )
    page = client.post(
        reverse("admin:finance_billdiscrepancy_changelist"), {"action": "resolve_with_note", "_selected_action": [d.pk]}
    ).content.decode()
    text = html.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", page)))
    assert "- ¥" not in text and "¥124.00" in text and "¥125.00" in text
    for code in ("total_mismatch", ">assigned<", ">wechat<"):
        assert code not in page, code
    assert "Day total differs" in text and "Assigned" in text and "WeChat Pay" in text
    assert '<label for="id_note" class="required">' in page


def test_a_users_page_is_linked_only_for_who_may_open_it(client, admin_client):
    support = staff_in("support", username="support-link")
    finance = staff_in("finance", username="finance-link")
    order, _ = paid_wechat_order()
    refund = requested_refund(order, amount_fen=100, by=support)
    refund_reject(refund_id=refund.pk, approver=finance, note="no")
    url = reverse("admin:refunds_refund_change", args=[refund.pk])
    for who in (support, finance):
        client.force_login(who)
        page = client.get(url).content.decode()
        assert "/admin/auth/user/" not in page, who.username  # it would be a bare 403 for them
        assert "support-link" in page and "finance-link" in page
        order_page = client.get(reverse("admin:orders_order_change", args=[order.pk])).content.decode()
        assert "/admin/auth/user/" not in order_page
    assert f"/admin/auth/user/{support.pk}/change/" in admin_client.get(url).content.decode()
    viewer = staff_in("support", username="support-who-views-users")
    viewer.user_permissions.add(Permission.objects.get(codename="view_user"))
    client.force_login(viewer)
    assert f"/admin/auth/user/{support.pk}/change/" in client.get(url).content.decode()


# --- secrets in raw bodies -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "shown"),
    [
        (
            "<xml><sign><![CDATA[4C3A]]></sign><status>0</status><sign_type>MD5</sign_type></xml>",
            "<xml><sign>[redacted]</sign><status>0</status><sign_type>MD5</sign_type></xml>",
        ),
        (
            '{"a": "x", "sign": "ab\\"c", "n": {"paySign": "z"}}',
            '{"a": "x", "sign": "[redacted]", "n": {"paySign": "[redacted]"}}',
        ),
        ("gmt_create=2026&sign=AbC%2B%3D&sign_type=RSA2", "gmt_create=2026&sign=[redacted]&sign_type=RSA2"),
        ("no secret here", "no secret here"),
    ],
)
def test_raw_bodies_are_shown_with_their_signature_masked(body, shown):
    assert masked_text(body) == shown


def test_the_inbox_page_masks_the_signature_of_a_body(admin_client):
    from payments.models import GatewayNotification

    row = GatewayNotification.objects.create(
        gateway="wallyt", body=b"<xml><sign>SECRETSIGN</sign><status>0</status></xml>", headers={}, verified=True
    )
    page = admin_client.get(reverse("admin:payments_gatewaynotification_change", args=[row.pk])).content.decode()
    assert "SECRETSIGN" not in page and "&lt;sign&gt;[redacted]&lt;/sign&gt;" in page


def test_chart_axes_carry_a_few_round_amounts():
    from finance.backoffice.charts import bar_chart, y_ticks

    assert y_ticks([12_000]) == [0, 5_000, 10_000, 15_000]  # ¥0..¥150 by ¥50, not every ¥10
    assert y_ticks([0]) == [0] and y_ticks([332_271]) == [0, 100_000, 200_000, 300_000, 400_000]
    svg = str(bar_chart(["a", "b"], {"paid": [12_000, 500]}, title="t", height=280))
    y_axis = svg.split('<g class="axis y')[1].split('<g class="axis x')[0]
    labels = re.findall(r"<text[^>]*>([^<]*)</text>", y_axis)
    assert labels == ["¥0.00", "¥50.00", "¥100.00", "¥150.00"]
    heights = [float(y) for y in re.findall(r'<text x="[^"]*" y="([\d.]+)"', y_axis)]
    assert min(abs(a - b) for a, b in itertools.pairwise(heights)) >= 30  # never crammed


def test_a_discrepancys_page_shows_each_side_in_words_without_internal_fields(client):
    client.force_login(staff_in("finance"))
    d = BillDiscrepancyFactory(
        gateway="wechat",
        kind="amount_mismatch",
        subject="refund",
        reference="RF20261130101445F0ACDA8405",
        our_amount_fen=1500,
        our_status="succeeded",
        their_amount_fen=1200,
        their_status="processing",
        seen_token="0123456789abcdef0123456789abcdef",
    )
    page = _text(client.get(reverse("admin:finance_billdiscrepancy_change", args=[d.pk])))
    assert "¥15.00 · Succeeded" in page and "¥12.00 · Processing" in page and "a refund" in page
    assert "0123456789abcdef" not in page and "Seen token" not in page
    assert "succeeded" not in page.replace("Succeeded", "")  # no raw status code
