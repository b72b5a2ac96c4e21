"""payments.services on its own (the flows through the gateways are in test_*_flow.py): the refund a
payment counts (the service refunds calls), the locked lookup, and the owner's cancel hook."""

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from core.audit import Actor
from core.errors import NotFound
from core.transitions import locked
from orders import hooks
from payments.models import Payment
from payments.services import payment_record_refund, payments_close_for_cancel
from refunds.tests.factories import RefundFactory

pytestmark = pytest.mark.django_db
ACTOR = Actor.system("test")


def test_a_succeeded_refund_is_counted_against_its_payment_with_an_event_in_two_statements():
    refund = RefundFactory(amount_fen=300)
    payment = refund.payment

    with transaction.atomic(), CaptureQueriesContext(connection) as queries:
        locked = Payment.objects.select_for_update().get(pk=payment.pk)
        payment_record_refund(payment=locked, refund_no=refund.refund_no, amount_fen=300, actor=ACTOR)
        payment_record_refund(payment=locked, refund_no="RF2", amount_fen=200, actor=ACTOR)

    assert len(queries) == 1 + 2 * 2
    payment.refresh_from_db()
    assert payment.refunded_fen == 500 and payment.status == Payment.Status.SUCCEEDED
    assert list(payment.events.values_list("action", "from_status", "to_status", "data")) == [
        ("refund", "succeeded", "succeeded", {"refund_no": refund.refund_no, "amount_fen": 300, "refunded_fen": 300}),
        ("refund", "succeeded", "succeeded", {"refund_no": "RF2", "amount_fen": 200, "refunded_fen": 500}),
    ]


def test_an_unknown_payment_is_a_404_naming_it():
    with pytest.raises(NotFound) as missing, transaction.atomic():
        locked(Payment, payment_no="PYNOSUCH")

    assert (missing.value.message, missing.value.details) == ("Payment not found.", {"payment_no": "PYNOSUCH"})


def test_payments_takes_part_in_an_owners_cancel_through_the_orders_hook():
    # registered by PaymentsConfig.ready(); the cancel through the API closes the payment at the sandbox
    # gateway first: test_wechat_flow.py::test_cancel_order_closes_its_open_payment_first
    assert payments_close_for_cancel in hooks.user_cancel_hooks()
