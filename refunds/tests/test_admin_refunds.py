"""The refund queue in admin: confirmation pages, bulk decisions through the services
(maker-checker refused per refund without aborting the others), abnormal resolution, requests."""

import pytest
from django.urls import reverse

from core.tests.factories import UserFactory
from orders.models import Order
from refunds.models import Refund, RefundEvent
from refunds.tests.test_admin_helpers import (
    abnormal_refund,
    paid_wallet_order,
    paid_wechat_order,
    requested_refund,
    staff_in,
)
from wallets.models import Wallet

pytestmark = pytest.mark.django_db
CHANGELIST = "/admin/refunds/refund/"


def _messages(response) -> list[str]:
    return [str(m) for m in response.wsgi_request._messages]


def _post(client, action, refunds, **extra):
    return client.post(CHANGELIST, {"action": action, "_selected_action": [r.pk for r in refunds], **extra})


def test_confirmation_page_shows_count_total_and_changes_nothing(client):
    client.force_login(staff_in("finance"))
    refunds = [requested_refund(paid_wallet_order()[0], amount_fen=fen) for fen in (123, 567)]
    response = _post(client, "approve_selected", refunds, index="0")
    assert response.status_code == 200
    page = response.content.decode()
    assert "<strong>2</strong> refund(s), total <strong>¥6.90</strong>." in page
    assert ">¥1.23</td>" in page and ">¥5.67</td>" in page
    assert all(r.refund_no in page for r in refunds) and 'name="note"' in page
    assert set(Refund.objects.values_list("status", flat=True)) == {"requested"}


def test_confirm_without_a_note_shows_the_page_again(client):
    client.force_login(staff_in("finance"))
    refund = requested_refund(paid_wallet_order()[0])
    response = _post(client, "reject_selected", [refund], confirm="yes", note="")
    assert response.status_code == 200 and "This field is required." in response.content.decode()
    refund.refresh_from_db()
    assert refund.status == "requested" and not RefundEvent.objects.filter(refund=refund, action="reject").exists()


def test_bulk_approve_refuses_maker_checker_per_refund_and_approves_the_others(
    client, celery_eager, django_capture_on_commit_callbacks
):
    # given a staff member in finance and support, who requested one of two refunds
    both = staff_in("finance", "support")
    client.force_login(both)
    (order_a, _), (order_b, _) = paid_wallet_order(fen=9_000), paid_wallet_order(fen=9_000)
    own = requested_refund(order_a, by=both, amount_fen=300)
    other = requested_refund(order_b, amount_fen=400)

    # when they approve both
    with django_capture_on_commit_callbacks(execute=True):
        response = _post(client, "approve_selected", [own, other], confirm="yes", note="checked the locker log")

    # then their own is refused (maker-checker) and the other approved, submitted and settled to the wallet
    assert response.status_code == 302
    own.refresh_from_db()
    other.refresh_from_db()
    assert own.status == "requested" and own.approved_by is None
    assert other.status == "succeeded" and other.approved_by == both and other.decision_note == "checked the locker log"
    assert _messages(response) == [
        f"{own.refund_no}: The person who requested a refund cannot approve it. (maker_checker)",
        f"Approved 1 refund(s): {other.refund_no}.",
    ]
    event = RefundEvent.objects.get(refund=other, action="approve")
    assert (event.actor, event.reason, event.from_status, event.to_status) == (
        f"staff:{both.pk}",
        "checked the locker log",
        "requested",
        "approved",
    )
    assert not RefundEvent.objects.filter(refund=own, action="approve").exists()
    assert Wallet.objects.get(user=order_b.user).balance_fen == 9_000 - order_b.amount_fen + 400
    assert Order.objects.get(pk=order_b.pk).status == "partially_refunded"


def test_full_refund_approved_in_admin_refunds_the_order(client, celery_eager, django_capture_on_commit_callbacks):
    client.force_login(staff_in("finance"))
    order, payment = paid_wallet_order()
    refund = requested_refund(order)
    with django_capture_on_commit_callbacks(execute=True):
        _post(client, "approve_selected", [refund], confirm="yes", note="ok")
    refund.refresh_from_db()
    payment.refresh_from_db()
    assert refund.status == "succeeded" and refund.amount_fen == order.amount_fen
    assert payment.refunded_fen == order.amount_fen
    assert Order.objects.get(pk=order.pk).status == "refunded"


def test_reject_records_who_when_and_why(client):
    finance = staff_in("finance")
    client.force_login(finance)
    refund = requested_refund(paid_wallet_order()[0])
    response = _post(client, "reject_selected", [refund], confirm="yes", note="rental was used")
    assert _messages(response) == [f"Rejected 1 refund(s): {refund.refund_no}."]
    refund.refresh_from_db()
    assert (refund.status, refund.approved_by, refund.decision_note) == ("rejected", finance, "rental was used")
    assert refund.decided_at is not None
    assert RefundEvent.objects.get(refund=refund, action="reject").actor == f"staff:{finance.pk}"


def test_approving_a_decided_refund_is_reported_not_a_500(client):
    client.force_login(staff_in("finance"))
    refund = requested_refund(paid_wallet_order()[0])
    _post(client, "reject_selected", [refund], confirm="yes", note="no")
    client.get(CHANGELIST)  # shows (and so consumes) the first message
    response = _post(client, "approve_selected", [refund], confirm="yes", note="yes after all")
    assert response.status_code == 302
    assert _messages(response) == [
        f"{refund.refund_no}: refund cannot go from 'rejected' to 'approved'. (invalid_transition)"
    ]


def test_resolve_abnormal_offline_needs_a_note_and_settles(client, gateways):
    finance = staff_in("finance")
    client.force_login(finance)
    order, payment = paid_wechat_order()
    refund = abnormal_refund(order)
    page = _post(client, "resolve_abnormal", [refund], index="0")
    assert page.status_code == 200 and 'value="offline"' in page.content.decode()
    _post(client, "resolve_abnormal", [refund], confirm="yes", resolution="offline", note="")
    refund.refresh_from_db()
    assert refund.status == "abnormal"
    response = _post(
        client, "resolve_abnormal", [refund], confirm="yes", resolution="offline", note="bank transfer 991"
    )
    assert _messages(response) == [f"Resolved 1 refund(s): {refund.refund_no}."]
    refund.refresh_from_db()
    payment.refresh_from_db()
    assert refund.status == "succeeded" and payment.refunded_fen == order.amount_fen
    event = RefundEvent.objects.get(refund=refund, action="succeed")
    assert event.actor == f"staff:{finance.pk}" and event.reason == "paid offline: bank transfer 991"
    assert Order.objects.get(pk=order.pk).status == "refunded"


def test_resolve_abnormal_retry_sends_it_again(client, django_capture_on_commit_callbacks, gateways):
    client.force_login(staff_in("finance"))
    refund = abnormal_refund(paid_wechat_order()[0])
    with django_capture_on_commit_callbacks() as callbacks:
        _post(client, "resolve_abnormal", [refund], confirm="yes", resolution="retry", note="card fixed")
    refund.refresh_from_db()
    assert refund.status == "processing" and len(callbacks) == 1  # refund_submit_task queued after commit
    assert RefundEvent.objects.filter(refund=refund, action="retry", reason="card fixed").count() == 1


def test_resolving_a_refund_that_is_not_abnormal_is_an_error_message(client):
    client.force_login(staff_in("finance"))
    refund = requested_refund(paid_wallet_order()[0])
    response = _post(client, "resolve_abnormal", [refund], confirm="yes", resolution="offline", note="x")
    assert _messages(response) == [
        f"{refund.refund_no}: refund cannot go from 'requested' to 'resolved'. (invalid_transition)"
    ]


def test_request_page_shows_the_order_and_reports_service_errors(client):
    support = staff_in("support")
    client.force_login(support)
    order, _ = paid_wallet_order()
    url = reverse("admin:refunds_refund_request")
    page = client.get(url, {"order_no": order.order_no}).content.decode()
    assert f"Order {order.order_no}" in page and 'still refundable: <strong id="bo-refundable">¥10.00</strong>' in page
    assert "amount ¥10.00" in page
    too_much = client.post(url, {"order_no": order.order_no, "amount": "999.99", "reason": "x"})
    assert too_much.status_code == 200 and Refund.objects.count() == 0
    assert _messages(too_much) == ["Refund not requested: The refund would exceed what was paid."]
    unknown = client.post(url, {"order_no": "NOPE", "reason": "x"})
    assert unknown.status_code == 200 and _messages(unknown) == ["Refund not requested: Order not found."]
    full = client.post(url, {"order_no": order.order_no, "reason": "locker broken"})
    refund = Refund.objects.get()
    assert full.status_code == 302 and refund.amount_fen == order.amount_fen and refund.requested_by == support
    assert RefundEvent.objects.get(refund=refund).actor == f"staff:{support.pk}"


def test_detail_page_shows_order_payment_other_refunds_and_trail(
    client, celery_eager, django_capture_on_commit_callbacks
):
    client.force_login(staff_in("finance"))
    order, payment = paid_wallet_order()
    first = requested_refund(order, amount_fen=100)
    second = requested_refund(order, amount_fen=200, reason="second")
    with django_capture_on_commit_callbacks(execute=True):
        _post(client, "approve_selected", [first], confirm="yes", note="fine")
    page = client.get(reverse("admin:refunds_refund_change", args=[second.pk])).content.decode()
    assert order.order_no in page and payment.payment_no in page
    assert f"{first.refund_no}</a> (Succeeded, ¥1.00)" in page
    assert '<span id="bo-refund-amount">¥2.00</span>' in page
    assert 'name="amount_fen"' not in page and 'name="status"' not in page  # read-only
    trail = page.split("Full audit trail")[1]
    for action in ("paid", "approve", "submit", "succeed", "refund"):
        assert f'<span class="bo-action">{action}</span>' in trail, action
    # statuses by label, numbers whole (in their own element, the full value in the title)
    assert "Paid &rarr; Partially refunded" in trail and "partially_refunded" not in trail
    assert f'<code class="bo-id" title="{second.refund_no}">{second.refund_no}</code>' in trail


def test_queue_filters_by_status_channel_and_amount_range(client):
    client.force_login(staff_in("finance"))
    small = requested_refund(paid_wallet_order()[0], amount_fen=100)
    big = requested_refund(paid_wallet_order()[0], amount_fen=900)
    wechat = requested_refund(paid_wechat_order()[0], amount_fen=500)

    def shown(**query):
        return {r.refund_no for r in client.get(CHANGELIST, query).context["cl"].result_list}

    # amounts typed in yuan, as people read them
    assert shown(amount_from="2", amount_to="9.00") == {big.refund_no, wechat.refund_no}
    assert shown(amount_to="5") == {small.refund_no, wechat.refund_no}
    assert shown(amount_from="¥1,000.00") == set()
    assert shown(**{"payment__channel__exact": "wechat_native"}) == {wechat.refund_no}
    assert shown(status__exact="requested", amount_from="abc") == {small.refund_no, big.refund_no, wechat.refund_no}
    assert shown(amount_from="1.005") == {small.refund_no, big.refund_no, wechat.refund_no}  # not an amount
    assert shown(status__exact="rejected") == set()


def test_user_refund_is_not_approvable_by_support_even_by_url(client):
    client.force_login(staff_in("support"))
    order, _ = paid_wallet_order(user=UserFactory())
    refund = requested_refund(order)
    response = _post(client, "approve_selected", [refund], confirm="yes", note="sneaky")
    assert response.status_code == 200  # no action for support: the list is shown again
    refund.refresh_from_db()
    assert refund.status == "requested"
