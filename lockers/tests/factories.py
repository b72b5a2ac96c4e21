"""factory-boy factories of cabinets, compartments and price plans."""

import factory

from lockers.models import Cabinet, Compartment, PricePlan


class CabinetFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Cabinet

    code = factory.Sequence(lambda n: f"CAB-{n:04d}")
    name = factory.Faker("street_name")
    location = factory.Faker("address")


class CompartmentFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Compartment

    cabinet = factory.SubFactory(CabinetFactory)
    label = factory.Sequence(lambda n: f"X{n}")
    size = "M"


class PricePlanFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = PricePlan
        django_get_or_create = ("size",)

    size = "M"
    price_per_hour_fen = 500
    min_hours = 1
    cap_fen = 5_000
