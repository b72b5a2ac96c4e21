"""factory-boy factories of payments that tests write directly (as a gateway's answer would have left
them); a payment that should go through the real flow is made with ``payments.tests.flows``."""

import factory
from django.utils import timezone

from orders.tests.factories import RentalOrderFactory
from payments.models import Channel, Payment


class PaymentFactory(factory.django.DjangoModelFactory):
    """An open WeChat Native payment of a pending rental, for the order's whole amount."""

    class Meta:
        model = Payment

    order = factory.SubFactory(RentalOrderFactory)
    payment_no = factory.Sequence(lambda n: f"PYT{n:017d}")
    channel = Channel.WECHAT_NATIVE
    amount_fen = factory.LazyAttribute(lambda p: p.order.amount_fen)

    class Params:
        succeeded = factory.Trait(
            status=Payment.Status.SUCCEEDED,
            gateway_trade_no=factory.Sequence(lambda n: f"4200000000{n:018d}"),
            paid_at=factory.LazyFunction(timezone.now),
        )
