"""The permission matrix: every back-office page and admin action, for finance, support,
operations and anonymous. Exact status codes, and rows changed (or not)."""

import pytest
from django.contrib.auth.models import Group
from django.urls import reverse

from payments.models import GatewayNotification
from refunds.models import Refund
from refunds.tests.test_admin_helpers import (
    ROLES,
    abnormal_refund,
    client_for,
    ensure_groups,
    paid_wallet_order,
    paid_wechat_order,
    requested_refund,
)

pytestmark = pytest.mark.django_db

OK, DENIED, LOGIN = 200, 403, 302


def test_groups_have_exactly_the_documented_permissions():
    ensure_groups()
    ensure_groups()  # idempotent

    def perms(name):
        return {f"{p.content_type.app_label}.{p.codename}" for p in Group.objects.get(name=name).permissions.all()}

    finance, support, operations = perms("finance"), perms("support"), perms("operations")
    views = {
        "payments.view_payment",
        "payments.view_paymentevent",
        "payments.view_gatewaynotification",
        "payments.view_wechatidentity",
        "payments.view_serviceorder",
        "payments.view_serviceorderevent",
        "refunds.view_refund",
        "refunds.view_refundevent",
        "orders.view_order",
        "orders.view_orderevent",
        "orders.view_abandonedrental",
        "wallets.view_wallet",
        "wallets.view_wallettransaction",
        "lockers.view_lockerevent",
    }
    assert finance == views | {
        "refunds.approve_refund",
        "refunds.resolve_abnormal_refund",
        "refunds.resend_refund",
        "refunds.export_finance",
        "payments.replay_gatewaynotification",
    }
    assert support == views | {"refunds.request_refund"}
    assert operations == {
        *(
            f"lockers.{verb}_{model}"
            for model in ("cabinet", "compartment", "priceplan")
            for verb in ("add", "change", "view")
        ),
        "lockers.view_pickupcode",
        "lockers.view_lockerevent",
        "orders.view_abandonedrental",
        "orders.clear_abandoned",
    }
    assert not any(
        p.startswith(("payments.change", "refunds.change", "wallets.change", "orders.change"))
        for p in finance | support
    )


@pytest.fixture
def world():
    order, payment = paid_wallet_order()
    refund = requested_refund(order, amount_fen=100)
    inbox = GatewayNotification.objects.create(gateway="wechat", headers={}, body=b"{}", reference=payment.payment_no)
    return {"order": order, "payment": payment, "refund": refund, "inbox": inbox}


PAGES = {
    # name: (url builder, finance, support, operations)
    "index": (lambda w: reverse("admin:index"), OK, OK, OK),
    "refund list": (lambda w: reverse("admin:refunds_refund_changelist"), OK, OK, DENIED),
    "refund detail": (lambda w: reverse("admin:refunds_refund_change", args=[w["refund"].pk]), OK, OK, DENIED),
    "refund add": (lambda w: reverse("admin:refunds_refund_add"), DENIED, DENIED, DENIED),
    "refund events": (lambda w: reverse("admin:refunds_refundevent_changelist"), OK, OK, DENIED),
    "dashboard": (lambda w: reverse("admin:backoffice_dashboard"), OK, OK, DENIED),
    "audit log": (lambda w: reverse("admin:backoffice_audit_log"), OK, OK, OK),
    "export form": (lambda w: reverse("admin:backoffice_export"), OK, DENIED, DENIED),
    "request refund form": (lambda w: reverse("admin:refunds_refund_request"), DENIED, OK, DENIED),
    "payment timeline": (
        lambda w: reverse("admin:backoffice_payment_timeline", args=[w["payment"].pk]),
        OK,
        OK,
        DENIED,
    ),
    "payment list": (lambda w: reverse("admin:payments_payment_changelist"), OK, OK, DENIED),
    "payment detail": (lambda w: reverse("admin:payments_payment_change", args=[w["payment"].pk]), OK, OK, DENIED),
    "inbox list": (lambda w: reverse("admin:payments_gatewaynotification_changelist"), OK, OK, DENIED),
    "inbox detail": (
        lambda w: reverse("admin:payments_gatewaynotification_change", args=[w["inbox"].pk]),
        OK,
        OK,
        DENIED,
    ),
    "order list": (lambda w: reverse("admin:orders_order_changelist"), OK, OK, DENIED),
    "order detail": (lambda w: reverse("admin:orders_order_change", args=[w["order"].pk]), OK, OK, DENIED),
    "ledger": (lambda w: reverse("admin:wallets_wallettransaction_changelist"), OK, OK, DENIED),
    "wallets": (lambda w: reverse("admin:wallets_wallet_changelist"), OK, OK, DENIED),
    "cabinets": (lambda w: reverse("admin:lockers_cabinet_changelist"), DENIED, DENIED, OK),
    "cabinet add": (lambda w: reverse("admin:lockers_cabinet_add"), DENIED, DENIED, OK),
    "price plans": (lambda w: reverse("admin:lockers_priceplan_changelist"), DENIED, DENIED, OK),
    "pickup codes": (lambda w: reverse("admin:lockers_pickupcode_changelist"), DENIED, DENIED, OK),
    "locker events": (lambda w: reverse("admin:lockers_lockerevent_changelist"), OK, OK, OK),
}


@pytest.mark.parametrize("page", PAGES)
@pytest.mark.parametrize("role", ROLES)
def test_every_page_answers_per_role(world, page, role):
    url_of, *expected = PAGES[page]
    want = (
        LOGIN if role == "anonymous" else dict(zip(("finance", "support", "operations"), expected, strict=True))[role]
    )
    response = client_for(role).get(url_of(world))
    assert response.status_code == want, (page, role)
    if want == LOGIN:
        assert response["Location"].startswith("/admin/login/")


@pytest.mark.parametrize("role", ROLES)
def test_money_is_never_editable(world, role):
    payment = world["payment"]
    url = reverse("admin:payments_payment_change", args=[payment.pk])
    response = client_for(role).post(url, {"amount_fen": 1, "status": "failed"})
    assert response.status_code == (LOGIN if role == "anonymous" else DENIED)
    payment.refresh_from_db()
    assert (payment.amount_fen, payment.status) == (world["order"].amount_fen, "succeeded")
    if role in ("finance", "support"):
        page = client_for(role).get(url).content.decode()
        assert 'name="amount_fen"' not in page and 'name="status"' not in page and "Save" not in page


def _action(client, model: str, action: str, ids, **extra):
    data = {"action": action, "_selected_action": [str(i) for i in ids], **extra}
    return client.post(reverse(f"admin:{model}_changelist"), data)


# support has no refund action at all: the changelist renders (200) and nothing runs
ACTION_STATUS = {"finance": 302, "support": 200, "operations": 403, "anonymous": 302}
DECISIONS = {"finance": "approved", "support": "requested", "operations": "requested", "anonymous": "requested"}


@pytest.mark.parametrize("role", ROLES)
def test_approve_action_per_role(world, role):
    refund = world["refund"]
    client = client_for(role)
    response = _action(client, "refunds_refund", "approve_selected", [refund.pk], confirm="yes", note="checked")
    assert response.status_code == ACTION_STATUS[role]
    refund.refresh_from_db()
    assert refund.status == DECISIONS[role]


@pytest.mark.parametrize("role", ROLES)
def test_reject_action_per_role(world, role):
    refund = world["refund"]
    response = _action(client_for(role), "refunds_refund", "reject_selected", [refund.pk], confirm="yes", note="no")
    assert response.status_code == ACTION_STATUS[role]
    refund.refresh_from_db()
    assert refund.status == ("rejected" if role == "finance" else "requested")


@pytest.mark.parametrize("role", ROLES)
def test_resolve_abnormal_action_per_role(role, gateways):
    order, _ = paid_wechat_order()
    refund = abnormal_refund(order)
    data = {"confirm": "yes", "resolution": "offline", "note": "paid by bank transfer"}
    response = _action(client_for(role), "refunds_refund", "resolve_abnormal", [refund.pk], **data)
    assert response.status_code == ACTION_STATUS[role]
    refund.refresh_from_db()
    assert refund.status == ("succeeded" if role == "finance" else "abnormal")


@pytest.mark.parametrize("role", ROLES)
def test_sync_action_per_role(world, role):
    response = _action(client_for(role), "refunds_refund", "sync_with_gateway", [world["refund"].pk], index="0")
    assert response.status_code == ACTION_STATUS[role]
    if role in ("finance", "support"):
        shown = [str(m) for m in response.wsgi_request._messages]
        assert shown == (["Nothing was changed."] if role == "finance" else [])


@pytest.mark.parametrize("role", ROLES)
def test_request_refund_page_per_role(world, role):
    order = world["order"]
    before = Refund.objects.count()
    response = client_for(role).post(
        reverse("admin:refunds_refund_request"),
        {"order_no": order.order_no, "amount": "0.50", "reason": "door jammed"},  # yuan, as typed
    )
    assert response.status_code == {"finance": 403, "support": 302, "operations": 403, "anonymous": 302}[role]
    assert Refund.objects.count() == before + (1 if role == "support" else 0)
    if role == "support":
        refund = Refund.objects.latest("id")
        assert (refund.amount_fen, refund.source, refund.status) == (50, "staff", "requested")
        assert response["Location"] == reverse("admin:refunds_refund_change", args=[refund.pk])


@pytest.mark.parametrize("model", ["orders_order", "payments_payment"])
@pytest.mark.parametrize("role", ROLES)
def test_request_refund_action_per_role(world, role, model):
    target = world["order"] if model == "orders_order" else world["payment"]
    response = _action(client_for(role), model, "request_refund", [target.pk], index="0")
    # finance has no order action (changelist shown, 200) and on payments only "sync" (refused: redirect)
    finance = 200 if model == "orders_order" else 302
    assert response.status_code == {"finance": finance, "support": 302, "operations": 403, "anonymous": 302}[role]
    location = response.get("Location", "")
    if role == "support":
        assert location == f"{reverse('admin:refunds_refund_request')}?order_no={world['order'].order_no}"
    elif role == "finance" and finance == 302:
        assert location == reverse(f"admin:{model}_changelist")


@pytest.mark.parametrize("role", ROLES)
def test_replay_per_role(world, role):
    inbox = world["inbox"]
    action = _action(client_for(role), "payments_gatewaynotification", "replay", [inbox.pk], index="0")
    direct = client_for(role).post(reverse("admin:payments_gatewaynotification_replay", args=[inbox.pk]))
    assert action.status_code == ACTION_STATUS[role]
    assert direct.status_code == {"finance": 302, "support": 403, "operations": 403, "anonymous": 302}[role]
    if role == "finance":  # allowed, and the service refuses an unverified row (shown, no 500)
        shown = [str(m) for m in direct.wsgi_request._messages]
        assert shown == [f"#{inbox.pk}: Only a verified notification can be replayed."]


@pytest.mark.parametrize("role", ROLES)
def test_export_download_per_role(world, role):
    today = world["payment"].created_at.date().isoformat()
    response = client_for(role).get(
        reverse("admin:backoffice_export"), {"dataset": "payments", "date_from": today, "date_to": today}
    )
    assert response.status_code == {"finance": 200, "support": 403, "operations": 403, "anonymous": 302}[role]
    if role == "finance":
        assert response.streaming and response["Content-Type"] == "text/csv; charset=utf-8"


def test_operations_sees_only_locker_events_in_the_audit_log(world):
    response = client_for("operations").get(reverse("admin:backoffice_audit_log"))
    kinds = {row["e_kind"] for row in response.context["rows"]}
    assert response.context["kinds"] == ["locker"] and kinds == {"locker"}
    everything = client_for("finance").get(reverse("admin:backoffice_audit_log"))
    assert {row["e_kind"] for row in everything.context["rows"]} == {"order", "payment", "refund", "locker", "ledger"}


@pytest.mark.parametrize("role", ROLES)
def test_compartment_actions_per_role(role):
    from lockers.tests.factories import CompartmentFactory

    compartment = CompartmentFactory()
    response = _action(client_for(role), "lockers_compartment", "set_out_of_service", [compartment.pk], index="0")
    assert response.status_code == {"finance": 403, "support": 403, "operations": 302, "anonymous": 302}[role]
    compartment.refresh_from_db()
    assert compartment.status == ("out_of_service" if role == "operations" else "free")


@pytest.mark.parametrize("role", ["finance", "support"])
def test_detail_pages_are_view_only(world, role):
    from lockers.models import LockerEvent
    from wallets.models import WalletTransaction

    client = client_for(role)
    urls = [
        reverse("admin:refunds_refund_change", args=[world["refund"].pk]),
        reverse("admin:payments_payment_change", args=[world["payment"].pk]),
        reverse("admin:payments_gatewaynotification_change", args=[world["inbox"].pk]),
        reverse("admin:orders_order_change", args=[world["order"].pk]),
        reverse("admin:wallets_wallettransaction_change", args=[WalletTransaction.objects.first().pk]),
        reverse("admin:wallets_wallet_change", args=[WalletTransaction.objects.first().wallet_id]),
        reverse("admin:lockers_lockerevent_change", args=[LockerEvent.objects.first().pk]),
    ]
    for url in urls:
        form = client.get(url).content.decode().split('id="content-main"')[1].split("</form>")[0]
        assert 'name="_save"' not in form, url
        assert not any(tag in form for tag in ('type="text"', 'type="number"', "<textarea", "<select")), url
