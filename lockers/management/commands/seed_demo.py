"""Demo data for a laptop run: cabinets, compartments, price plans and three users. Idempotent."""

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from lockers.models import Cabinet, Compartment, PricePlan

CABINETS = [
    ("CAB-001", "Central Station", "Hall B, next to gate 3"),
    ("CAB-002", "City Library", "Ground floor entrance"),
    ("CAB-003", "Riverside Mall", "Level 2, food court"),
]
LAYOUT = [("A1", "S"), ("A2", "S"), ("B1", "M"), ("B2", "M"), ("C1", "L"), ("C2", "L")]
PLANS = {"S": (300, 1, 3_000), "M": (500, 1, 5_000), "L": (800, 2, 8_000)}  # fen/hour, min hours, cap
USERS = [  # username, staff, superuser, group (created by the refunds migrations)
    ("demo", False, False, None),
    ("finance", True, False, "finance"),
    ("support", True, False, "support"),
    ("operations", True, False, "operations"),
    ("admin", True, True, None),
]


class Command(BaseCommand):
    help = "Create demo cabinets, compartments, price plans and users (demo, finance, support, operations, admin)."

    def add_arguments(self, parser):
        parser.add_argument("--password", default="locker-demo", help="Password for the demo users.")

    @transaction.atomic
    def handle(self, *args, password: str, **options):
        if settings.PRODUCTION:
            raise CommandError("seed_demo creates users with a known password: refused in production.")
        for size, (price, min_hours, cap) in PLANS.items():
            PricePlan.objects.get_or_create(
                size=size, defaults={"price_per_hour_fen": price, "min_hours": min_hours, "cap_fen": cap}
            )
        for code, name, location in CABINETS:
            cabinet, _ = Cabinet.objects.get_or_create(code=code, defaults={"name": name, "location": location})
            for label, size in LAYOUT:
                Compartment.objects.get_or_create(cabinet=cabinet, label=label, defaults={"size": size})
        User = get_user_model()
        for username, staff, superuser, group in USERS:
            user, created = User.objects.get_or_create(
                username=username, defaults={"is_staff": staff, "is_superuser": superuser}
            )
            if created:
                user.set_password(password)
                user.save(update_fields=["password"])
            if group:
                user.groups.add(Group.objects.get(name=group))
        self.stdout.write(
            self.style.SUCCESS(
                f"demo data ready: {Cabinet.objects.count()} cabinets, {Compartment.objects.count()} compartments; "
                f"users demo/finance/support/operations/admin (password '{password}' for new users)"
            )
        )
