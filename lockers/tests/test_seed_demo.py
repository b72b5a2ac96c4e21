"""``manage.py seed_demo``: idempotent, and staff in their groups."""

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command

from lockers.models import Cabinet, Compartment, PricePlan


@pytest.mark.django_db
def test_seed_demo_is_idempotent_and_puts_staff_in_their_groups():
    call_command("seed_demo", verbosity=0)
    call_command("seed_demo", verbosity=0)
    assert (Cabinet.objects.count(), Compartment.objects.count(), PricePlan.objects.count()) == (3, 18, 3)
    users = get_user_model().objects
    assert users.get(username="finance").has_perm("refunds.approve_refund")
    assert users.get(username="support").has_perm("refunds.request_refund")
    assert not users.get(username="support").has_perm("refunds.approve_refund")
    assert users.get(username="operations").has_perm("lockers.change_compartment")
    assert not users.get(username="demo").is_staff
