"""factory-boy factories of refunds that tests write directly; refunds that should go through the
approval workflow are made with ``refunds.services.refund_request``."""

import factory

from payments.tests.factories import PaymentFactory
from refunds.models import Refund


class RefundFactory(factory.django.DjangoModelFactory):
    """A refund requested by its user of part (100 fen) of a succeeded payment."""

    class Meta:
        model = Refund

    payment = factory.SubFactory(PaymentFactory, succeeded=True)
    order = factory.LazyAttribute(lambda r: r.payment.order)
    refund_no = factory.Sequence(lambda n: f"RFT{n:017d}")
    amount_fen = 100
    reason = "customer asked"
    source = Refund.Source.USER
