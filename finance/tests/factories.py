"""factory-boy factories of the refunds app's rows that tests make directly."""

import factory
from django.utils import timezone

from finance.models import BillDiscrepancy


class BillDiscrepancyFactory(factory.django.DjangoModelFactory):
    """An open discrepancy of today's bill: by default a payment we settled that the bill left out."""

    class Meta:
        model = BillDiscrepancy

    bill_date = factory.LazyFunction(timezone.localdate)
    gateway = "wallyt"
    kind = BillDiscrepancy.Kind.MISSING_REMOTE
    subject = "payment"
    reference = factory.Sequence(lambda n: f"PY20261130101445F0ACDA{n:04d}")
    first_seen = factory.LazyFunction(timezone.now)
    last_seen = factory.LazyAttribute(lambda d: d.first_seen)
