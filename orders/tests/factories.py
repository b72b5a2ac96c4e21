"""factory-boy factories of rental and top-up orders."""

from datetime import timedelta

import factory
from django.utils import timezone

from core.tests.factories import UserFactory
from lockers.tests.factories import CompartmentFactory, PricePlanFactory
from orders.models import Order


class RentalOrderFactory(factory.django.DjangoModelFactory):
    """A pending rental built through the real service (so the compartment is reserved)."""

    class Meta:
        model = Order

    @classmethod
    def _create(cls, model_class, user=None, compartment=None, hours=2, **kwargs):
        from orders.services import order_create_rental

        user = user or UserFactory()
        compartment = compartment or CompartmentFactory()
        PricePlanFactory(size=compartment.size)
        return order_create_rental(user=user, compartment_id=compartment.pk, hours=hours)


class TopupOrderFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Order

    order_no = factory.Sequence(lambda n: f"TU{n:020d}")
    user = factory.SubFactory(UserFactory)
    kind = Order.Kind.WALLET_TOPUP
    amount_fen = 10_000
    expires_at = factory.LazyFunction(lambda: timezone.now() + timedelta(minutes=15))
