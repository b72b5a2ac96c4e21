"""The refund workflow: request rules, maker-checker, every transition, the cap under concurrency."""

import pytest
from django.contrib.auth.models import Permission

from conftest import run_concurrently
from core.audit import Actor
from core.errors import DomainError, InvalidTransition, ValidationFailed
from core.tests.factories import StaffFactory, UserFactory
from orders.models import Order
from payments.models import Payment
from payments.tests.flows import paid_order
from refunds.models import Refund, RefundEvent
from refunds.services import (
    refund_approve,
    refund_mark_failed,
    refund_reject,
    refund_request,
    refund_resolve_abnormal,
)
from wallets.services import wallet_credit

S = Refund.Status


def staff_with(*perms):
    user = StaffFactory()
    for perm in perms:
        app, codename = perm.split(".")
        user.user_permissions.add(Permission.objects.get(content_type__app_label=app, codename=codename))
    return type(user).objects.get(pk=user.pk)  # drop the permission cache


@pytest.fixture
def committed(django_capture_on_commit_callbacks, celery_eager):
    """Run after-commit work (the refund submission task) in-process, as the worker would."""
    return lambda: django_capture_on_commit_callbacks(execute=True)


@pytest.fixture
def wallet_paid(user_api):
    """A rental paid from the wallet (no gateway needed)."""
    wallet_credit(user_id=user_api.user.pk, amount_fen=10_000, type="topup", reference="TU1", actor=Actor.system("t"))
    return paid_order(user_api, None, channel="wallet")


@pytest.mark.django_db
def test_user_refund_waits_for_approval_then_credits_the_wallet(user_api, wallet_paid, committed):
    order, payment_no = wallet_paid
    response = user_api.post(
        "/api/v1/refunds/", {"order_no": order["order_no"], "reason": "changed my mind"}, format="json"
    )
    assert response.status_code == 201 and response.json()["status"] == "requested"
    refund = Refund.objects.get(refund_no=response.json()["refund_no"])
    assert refund.amount_fen == order["amount_fen"]  # full when no amount given

    with committed():
        refund_approve(refund_id=refund.pk, approver=staff_with("refunds.approve_refund"), note="ok")

    refund.refresh_from_db()
    assert refund.status == S.SUCCEEDED
    payment = Payment.objects.get(payment_no=payment_no)
    assert payment.refunded_fen == order["amount_fen"]
    assert Order.objects.get(order_no=order["order_no"]).status == "refunded"
    ledger = user_api.get("/api/v1/wallet/").json()
    assert ledger["balance_fen"] == 10_000 and ledger["recent"][0]["type"] == "refund"
    assert user_api.get(f"/api/v1/refunds/{refund.refund_no}/").json()["status"] == "succeeded"
    actions = list(RefundEvent.objects.filter(refund=refund).values_list("action", "actor"))
    assert [a for a, _ in actions] == ["request", "approve", "submit", "succeed"]


@pytest.mark.django_db
def test_partial_then_rest(user_api, wallet_paid, committed):
    order, payment_no = wallet_paid
    finance = staff_with("refunds.approve_refund")
    first = refund_request(order_no=order["order_no"], amount_fen=300, reason="part", requested_by=user_api.user)
    with committed():
        refund_approve(refund_id=first.pk, approver=finance)
    assert Order.objects.get(order_no=order["order_no"]).status == "partially_refunded"
    rest = refund_request(order_no=order["order_no"], amount_fen=None, reason="rest", requested_by=user_api.user)
    assert rest.amount_fen == order["amount_fen"] - 300
    with committed():
        refund_approve(refund_id=rest.pk, approver=finance)
    assert Order.objects.get(order_no=order["order_no"]).status == "refunded"
    assert Payment.objects.get(payment_no=payment_no).refunded_fen == order["amount_fen"]
    with pytest.raises(DomainError) as err:
        refund_request(order_no=order["order_no"], amount_fen=1, reason="more", requested_by=user_api.user)
    assert err.value.code == "not_refundable"


@pytest.mark.django_db
def test_request_rules(user_api, wallet_paid):
    order, _ = wallet_paid
    cases = [
        (
            {"order_no": order["order_no"], "reason": "x", "amount_fen": order["amount_fen"] + 1},
            409,  # what is left to refund is the order's state, not the request's shape
            "refund_exceeds_paid",
        ),
        ({"order_no": order["order_no"], "reason": "x", "amount_fen": 0}, 400, "invalid_input"),
        ({"order_no": order["order_no"], "reason": "x", "amount_fen": -5}, 400, "invalid_input"),
        ({"order_no": order["order_no"], "amount_fen": 5}, 400, "invalid_input"),
        ({"order_no": "NOPE", "reason": "x"}, 404, "not_found"),
    ]
    for body, status, code in cases:
        response = user_api.post("/api/v1/refunds/", body, format="json")
        assert (response.status_code, response.json()["error"]["code"]) == (status, code), body
    assert not Refund.objects.exists()


@pytest.mark.django_db
def test_someone_elses_order_is_404(api, wallet_paid):
    from core.jwt_auth import token_for

    order, _ = wallet_paid
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {token_for(UserFactory())}")
    response = api.post("/api/v1/refunds/", {"order_no": order["order_no"], "reason": "x"}, format="json")
    assert response.status_code == 404 and not Refund.objects.exists()


@pytest.mark.django_db
def test_unpaid_order_cannot_be_refunded(user_api):
    from payments.tests.flows import rental

    order = rental(user_api)
    response = user_api.post("/api/v1/refunds/", {"order_no": order["order_no"], "reason": "x"}, format="json")
    assert response.status_code == 409 and response.json()["error"]["code"] == "not_refundable"


@pytest.mark.django_db
def test_rental_in_use_needs_staff(user_api, wallet_paid):
    order, _ = wallet_paid
    user_api.post(f"/api/v1/orders/{order['order_no']}/open-door/", {}, format="json")  # the customer uses it
    response = user_api.post("/api/v1/refunds/", {"order_no": order["order_no"], "reason": "x"}, format="json")
    assert response.status_code == 403 and response.json()["error"]["code"] == "refund_needs_staff"
    support = staff_with("refunds.request_refund")
    refund = refund_request(
        order_no=order["order_no"], amount_fen=None, reason="staff", requested_by=support, source="staff"
    )
    assert refund.status == S.REQUESTED and refund.source == "staff"


@pytest.mark.django_db
def test_maker_cannot_be_checker(user_api, wallet_paid):
    order, _ = wallet_paid
    both = staff_with("refunds.request_refund", "refunds.approve_refund")
    refund = refund_request(order_no=order["order_no"], amount_fen=100, reason="x", requested_by=both, source="staff")
    with pytest.raises(DomainError) as err:
        refund_approve(refund_id=refund.pk, approver=both, note="self")
    assert err.value.code == "maker_checker"
    assert Refund.objects.get(pk=refund.pk).status == S.REQUESTED


@pytest.mark.django_db
def test_approval_needs_the_permission(user_api, wallet_paid):
    order, _ = wallet_paid
    refund = refund_request(order_no=order["order_no"], amount_fen=100, reason="x", requested_by=user_api.user)
    for who in (staff_with("refunds.request_refund"), user_api.user):
        with pytest.raises(DomainError) as err:
            refund_approve(refund_id=refund.pk, approver=who)
        assert err.value.code == "not_allowed"
        with pytest.raises(DomainError):
            refund_reject(refund_id=refund.pk, approver=who, note="no")
    assert Refund.objects.get(pk=refund.pk).status == S.REQUESTED


@pytest.mark.django_db
def test_auto_approve_threshold(user_api, wallet_paid, settings, committed):
    settings.REFUND_AUTO_APPROVE_MAX_FEN = 200
    order, _ = wallet_paid
    with committed():
        small = refund_request(order_no=order["order_no"], amount_fen=200, reason="x", requested_by=user_api.user)
        big = refund_request(order_no=order["order_no"], amount_fen=201, reason="x", requested_by=user_api.user)
    assert Refund.objects.get(pk=small.pk).status == S.SUCCEEDED
    assert Refund.objects.get(pk=big.pk).status == S.REQUESTED


def _refund_in(status, order_no, user):
    refund = refund_request(order_no=order_no, amount_fen=100, reason="x", requested_by=user)
    Refund.objects.filter(pk=refund.pk).update(status=status)
    return Refund.objects.get(pk=refund.pk)


ACTIONS = {
    "approve": (S.APPROVED, lambda r, f: refund_approve(refund_id=r.pk, approver=f)),
    "reject": (S.REJECTED, lambda r, f: refund_reject(refund_id=r.pk, approver=f, note="no")),
    "fail": (S.FAILED, lambda r, f: refund_mark_failed(refund_id=r.pk, actor=Actor.system("t"), reason="x")),
    "offline": (
        S.SUCCEEDED,
        lambda r, f: refund_resolve_abnormal(refund_id=r.pk, staff=f, action="offline", note="paid by bank transfer"),
    ),
    "retry": (
        S.PROCESSING,
        lambda r, f: refund_resolve_abnormal(refund_id=r.pk, staff=f, action="retry", note="try again"),
    ),
}
IDEMPOTENT = {("fail", S.FAILED)}


@pytest.mark.django_db
@pytest.mark.parametrize("start", list(S))
@pytest.mark.parametrize("action", list(ACTIONS))
def test_every_refund_transition_allowed_or_refused(user_api, wallet_paid, start, action):
    order, _ = wallet_paid
    finance = staff_with("refunds.approve_refund", "refunds.resolve_abnormal_refund")
    refund = _refund_in(start, order["order_no"], user_api.user)
    target, call = ACTIONS[action]
    events = RefundEvent.objects.filter(refund=refund).count()
    allowed = target in Refund.TRANSITIONS[start] and (action not in ("offline", "retry") or start == S.ABNORMAL)
    if (action, start) in IDEMPOTENT:
        call(refund, finance)
        assert RefundEvent.objects.filter(refund=refund).count() == events
    elif allowed:
        call(refund, finance)
        refund.refresh_from_db()
        assert refund.status == target
        assert RefundEvent.objects.filter(refund=refund).latest("id").to_status == target
    else:
        with pytest.raises((InvalidTransition, ValidationFailed)):
            call(refund, finance)
        refund.refresh_from_db()
        assert refund.status == start
        assert RefundEvent.objects.filter(refund=refund).count() == events


@pytest.mark.django_db(transaction=True)
def test_twenty_concurrent_partial_refunds_never_exceed_what_was_paid(user_api):
    # given a paid order of 1000 fen
    wallet_credit(user_id=user_api.user.pk, amount_fen=10_000, type="topup", reference="TU1", actor=Actor.system("t"))
    order, payment_no = paid_order(user_api, None, channel="wallet")
    assert order["amount_fen"] == 1_000

    # when 20 requests of 70 fen arrive at once (1400 fen asked for)
    results = run_concurrently(
        lambda i: refund_request(order_no=order["order_no"], amount_fen=70, reason=f"r{i}", requested_by=user_api.user),
        args_list=[(i,) for i in range(20)],
    )

    # then 14 fit (980 fen), 6 are refused, and the sum never exceeds the amount paid
    accepted = [r for r in results if isinstance(r, Refund)]
    refused = [r for r in results if isinstance(r, DomainError)]
    assert len(accepted) == 14 and len(refused) == 6, results
    assert {e.code for e in refused} == {"refund_exceeds_paid"}
    total = sum(r.amount_fen for r in Refund.objects.filter(payment__payment_no=payment_no))
    assert total == 980 <= order["amount_fen"]


@pytest.mark.django_db
def test_nothing_left_to_refund_names_the_amount_asked_for(user_api):
    wallet_credit(user_id=user_api.user.pk, amount_fen=10_000, type="topup", reference="TU2", actor=Actor.system("t"))
    order, _ = paid_order(user_api, None, channel="wallet")
    refund_request(order_no=order["order_no"], amount_fen=None, reason="all", requested_by=user_api.user)

    with pytest.raises(DomainError) as refused:
        refund_request(order_no=order["order_no"], amount_fen=1, reason="one more", requested_by=user_api.user)

    assert refused.value.code == "refund_exceeds_paid"
    assert refused.value.details == {"refundable_fen": 0, "amount_fen": 1}
