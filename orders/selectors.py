from django.db.models import QuerySet

from lockers.models import PickupCode
from orders.models import Order


def order_list_for_user(*, user) -> QuerySet[Order]:
    return Order.objects.filter(user=user).select_related("compartment__cabinet")


def pickup_codes_for(*, order_nos: list[str]) -> dict[str, str]:
    """Active pickup codes of these orders, in one query."""
    rows = PickupCode.objects.filter(reference__in=order_nos, status=PickupCode.Status.ACTIVE)
    return dict(rows.values_list("reference", "code"))
