"""Cabinets, compartments (with their table of allowed transitions), price plans in fen, pickup codes, and
the locker audit trail (``LockerEvent``: every change of a compartment or its codes, every door command)."""

from django.db import models
from django.db.models import Q

from core.audit import AuditEvent
from core.money import format_yuan


class Size(models.TextChoices):
    S = "S", "Small"
    M = "M", "Medium"
    L = "L", "Large"


class Cabinet(models.Model):
    code = models.CharField(max_length=32, unique=True)
    name = models.CharField(max_length=100)
    location = models.CharField(max_length=200, blank=True)
    is_online = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ("code",)

    def __str__(self) -> str:
        return f"{self.code} {self.name}"


class Compartment(models.Model):
    class Status(models.TextChoices):
        FREE = "free"
        RESERVED = "reserved"
        OCCUPIED = "occupied"
        OUT_OF_SERVICE = "out_of_service"

    # the moves core.transitions allows (lockers.services); a held compartment is let go only by its order
    TRANSITIONS = {
        Status.FREE: {Status.RESERVED, Status.OUT_OF_SERVICE},
        Status.RESERVED: {Status.OCCUPIED, Status.FREE},
        Status.OCCUPIED: {Status.FREE},
        Status.OUT_OF_SERVICE: {Status.FREE},
    }
    AUDIT = ("lockers.LockerEvent", "compartment")

    cabinet = models.ForeignKey(Cabinet, on_delete=models.PROTECT, related_name="compartments")
    label = models.CharField(max_length=16)
    size = models.CharField(max_length=1, choices=Size.choices)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.FREE)
    reference = models.CharField(max_length=40, blank=True, help_text="Order holding it, if any.")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ("cabinet_id", "label")
        constraints = [
            models.UniqueConstraint(fields=("cabinet", "label"), name="compartment_label_unique"),
            models.CheckConstraint(
                condition=Q(status__in=("free", "out_of_service"), reference="")
                | Q(status__in=("reserved", "occupied")) & ~Q(reference=""),
                name="compartment_reference_matches_status",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.cabinet.code}-{self.label} ({self.size})"


class PricePlan(models.Model):
    """Price of one compartment size: per started hour, with a minimum and a cap per rental."""

    size = models.CharField(max_length=1, choices=Size.choices, unique=True)
    price_per_hour_fen = models.BigIntegerField()
    min_hours = models.PositiveIntegerField(default=1)
    cap_fen = models.BigIntegerField(help_text="Most a single rental can cost, in fen.")
    overtime_per_hour_fen = models.BigIntegerField(
        null=True, blank=True, help_text="Overtime per started hour, in fen; empty: the plan's price per hour."
    )
    overtime_daily_cap_fen = models.BigIntegerField(
        null=True, blank=True, help_text="Most overtime costs per 24 hours, in fen; empty: the plan's cap per rental."
    )
    is_active = models.BooleanField(default=True)

    class Meta:
        ordering = ("size",)
        constraints = [
            models.CheckConstraint(condition=Q(price_per_hour_fen__gt=0), name="priceplan_price_positive"),
            models.CheckConstraint(condition=Q(min_hours__gte=1), name="priceplan_min_hours_positive"),
            models.CheckConstraint(condition=Q(cap_fen__gt=0), name="priceplan_cap_positive"),
            models.CheckConstraint(
                condition=Q(overtime_per_hour_fen__isnull=True) | Q(overtime_per_hour_fen__gt=0),
                name="priceplan_overtime_price_positive",
            ),
            models.CheckConstraint(
                condition=Q(overtime_daily_cap_fen__isnull=True) | Q(overtime_daily_cap_fen__gt=0),
                name="priceplan_overtime_cap_positive",
            ),
        ]

    def __str__(self) -> str:
        """``Large: ¥8.00/h``: people read it (admin titles, breadcrumbs, the admin log)."""
        return f"{self.get_size_display()}: {format_yuan(self.price_per_hour_fen)}/h"


class PickupCode(models.Model):
    class Status(models.TextChoices):
        ACTIVE = "active"
        USED = "used"
        CANCELLED = "cancelled"

    TRANSITIONS = {Status.ACTIVE: {Status.USED, Status.CANCELLED}, Status.USED: set(), Status.CANCELLED: set()}
    AUDIT = ("lockers.LockerEvent", "compartment_id")  # a code's events are its compartment's

    compartment = models.ForeignKey(Compartment, on_delete=models.PROTECT, related_name="pickup_codes")
    reference = models.CharField(max_length=40, db_index=True, help_text="The order this code opens.")
    code = models.CharField(max_length=6)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.ACTIVE)
    valid_until = models.DateTimeField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ("-id",)
        constraints = [
            models.UniqueConstraint(
                fields=("compartment", "code"), condition=Q(status="active"), name="pickup_code_active_unique"
            ),
            models.UniqueConstraint(
                fields=("reference",), condition=Q(status="active"), name="pickup_code_one_active_per_order"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.reference} ({self.status})"


class DoorPurpose(models.TextChoices):
    """What a door-open command is for, recorded with the command (``LockerEvent.data["purpose"]``).

    The purpose, not who asked or which driver carried it out, says whether the customer used the
    rental: only ``pickup`` and ``reopen`` do (``CUSTOMER_USE``).
    """

    DELIVERY = "delivery", "after payment: the customer puts their things in"
    PICKUP = "pickup", "the customer takes their things out: the rental ends"
    REOPEN = "reopen", "open again shortly after the pickup (a forgotten item)"
    STAFF = "staff", "opened by staff, with a reason"


CUSTOMER_USE = (DoorPurpose.PICKUP, DoorPurpose.REOPEN)
DOOR_OPEN_COMMAND = "door_open_command"  # LockerEvent.action of the command, written in the requesting transaction
DOOR_OPEN_SENT = "door_open_sent"  # LockerEvent.action once the driver took the command (after commit)
DOOR_OPEN_EXPIRED = "door_open_expired"  # LockerEvent.action of a command too old to send (LOCKER_DOOR_COMMAND_TTL)


class LockerEvent(AuditEvent):
    compartment = models.ForeignKey(Compartment, on_delete=models.PROTECT, related_name="events")
    reference = models.CharField(max_length=40, blank=True, db_index=True)
