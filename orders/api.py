"""The order API: rentals (create, list, detail, open the door, cancel) and wallet top-ups, in the one
error shape (``core.api``). Prices are the server's (``orders.services``); amounts in fen."""

from datetime import datetime

from django.conf import settings
from django.db.models import Q, Sum
from django.shortcuts import get_object_or_404
from django.utils import timezone
from drf_spectacular.utils import extend_schema, extend_schema_field
from rest_framework import generics, serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from core.api import StrictSerializer
from core.audit import Actor
from core.openapi import RETRY_AFTER, errors
from lockers.api import RentalHoursMixin
from lockers.models import Size
from lockers.selectors import pickup_codes_active
from orders import services
from orders.models import Order
from orders.selectors import order_list_for_user, rental_clock


class CompartmentRef(serializers.Serializer):
    id = serializers.IntegerField()
    cabinet = serializers.CharField(help_text="The cabinet's code.")
    label = serializers.CharField()
    size = serializers.ChoiceField(choices=Size.choices)


class PricingOut(serializers.Serializer):
    """The server's quote a rental's amount came from (empty for a wallet top-up)."""

    size = serializers.ChoiceField(choices=Size.choices, required=False)
    hours = serializers.IntegerField(required=False)
    billed_hours = serializers.IntegerField(required=False)
    price_per_hour_fen = serializers.IntegerField(required=False)
    cap_fen = serializers.IntegerField(required=False)
    amount_fen = serializers.IntegerField(required=False)
    overdue_seconds = serializers.IntegerField(required=False, help_text="Overtime: seconds past the paid end.")
    days = serializers.IntegerField(required=False, help_text="Overtime: started 24-hour days.")
    per_hour_fen = serializers.IntegerField(required=False, help_text="Overtime: price per started hour.")
    daily_cap_fen = serializers.IntegerField(required=False, help_text="Overtime: most per 24 hours.")
    rental_ends_at = serializers.DateTimeField(required=False, help_text="Overtime: the paid end it counts from.")
    covers_until = serializers.DateTimeField(required=False, help_text="Overtime: the end of the hours billed.")
    priced_at = serializers.DateTimeField(required=False)


class OrderOut(serializers.ModelSerializer):
    """An order. A rental also says where it stands (``time_left_seconds``, ``pickup_until``,
    ``reopen_until``) and what opening its door does now (``door``: pickup, reopen, overdue (asking answers
    402 ``overtime_due`` with the overtime order to pay) or null). An overtime order (``locker_overtime``)
    names its ``rental``; its ``pricing`` is the server's overtime quote."""

    compartment = serializers.SerializerMethodField()
    pickup_code = serializers.SerializerMethodField()
    time_left_seconds = serializers.SerializerMethodField()
    pickup_until = serializers.SerializerMethodField()
    reopen_until = serializers.SerializerMethodField()
    door = serializers.SerializerMethodField()
    paid_fen = serializers.SerializerMethodField(
        help_text="What was actually charged, in fen: the sum of the order's succeeded payments (refunds not "
        "subtracted). For a rental paid after use (WeChat Pay Score) 0 until WeChat has collected."
    )
    billed_fen = serializers.SerializerMethodField(
        help_text="A rental paid after use (WeChat Pay Score): the final amount billed when it ended, in fen "
        "(at most its risk fund); null before the end and for orders paid up front (see amount_fen)."
    )
    rental = serializers.SlugRelatedField(
        source="parent",
        slug_field="order_no",
        read_only=True,
        allow_null=True,
        help_text="Overtime: the rental's order number (null for other kinds).",
    )
    pricing = PricingOut(read_only=True)

    class Meta:
        model = Order
        fields = (
            "order_no",
            "kind",
            "status",
            "amount_fen",
            "paid_fen",
            "billed_fen",
            "hours",
            "rental",
            "pricing",
            "compartment",
            "pickup_code",
            "expires_at",
            "paid_at",
            "rental_ends_at",
            "time_left_seconds",
            "pickup_until",
            "completed_at",
            "reopen_until",
            "door",
            "created_at",
        )

    @extend_schema_field(CompartmentRef(allow_null=True))
    def get_compartment(self, obj) -> dict | None:
        c = obj.compartment
        return None if c is None else {"id": c.pk, "cabinet": c.cabinet.code, "label": c.label, "size": c.size}

    def get_pickup_code(self, obj) -> str | None:
        code = self.context["codes"].get(obj.order_no)
        return code.code if code else None

    def get_time_left_seconds(self, obj) -> int | None:
        return self.context["clocks"][obj.order_no].time_left_seconds

    def get_pickup_until(self, obj) -> datetime | None:
        until = self.context["clocks"][obj.order_no].pickup_until
        return serializers.DateTimeField().to_representation(until) if until else None

    def get_reopen_until(self, obj) -> datetime | None:
        until = self.context["clocks"][obj.order_no].reopen_until
        return serializers.DateTimeField().to_representation(until) if until else None

    def get_door(self, obj) -> str | None:
        return self.context["clocks"][obj.order_no].door or None

    def get_paid_fen(self, obj) -> int:
        return self.context["paid"].get(obj.pk) or 0

    def get_billed_fen(self, obj) -> int | None:
        return self.context["billed"].get(obj.pk)


# payments.models.Payment.Status.SUCCEEDED; a live ServiceOrder (at most one per order) once its total is set
PAYMENT_SUCCEEDED = Q(payments__status="succeeded")
SERVICE_ORDER_BILLED = Q(
    service_orders__status__in=("confirmed", "completed", "paid"), service_orders__total_fen__isnull=False
)


def render_orders(orders, *, many: bool = False):
    items = list(orders) if many else [orders]
    codes = pickup_codes_active(references=[o.order_no for o in items])
    now = timezone.now()
    clocks = {o.order_no: rental_clock(o, code=codes.get(o.order_no), now=now) for o in items}
    ids = [o.pk for o in items]
    # through the reverse relations (payments sits a floor above): two queries for the whole page
    paid = Order.objects.filter(pk__in=ids).annotate(fen=Sum("payments__amount_fen", filter=PAYMENT_SUCCEEDED))
    billed = Order.objects.filter(pk__in=ids).annotate(
        fen=Sum("service_orders__total_fen", filter=SERVICE_ORDER_BILLED)
    )
    context = {
        "codes": codes,
        "clocks": clocks,
        "paid": dict(paid.values_list("pk", "fen")),
        "billed": dict(billed.values_list("pk", "fen")),
    }
    data = OrderOut(items, many=True, context=context).data
    return data if many else data[0]


class OrderCreateIn(RentalHoursMixin, StrictSerializer):
    compartment_id = serializers.IntegerField(min_value=1, max_value=2**63 - 1)


class DoorOut(serializers.Serializer):
    """What the opening was for (``pickup`` completes the rental; ``reopen``: a forgotten item) and the
    order as it stands after it."""

    status = serializers.ChoiceField(choices=["door_open_sent"])
    purpose = serializers.ChoiceField(choices=["pickup", "reopen"])
    order = OrderOut()


class OrderListCreate(generics.GenericAPIView):
    serializer_class = OrderOut

    def get_queryset(self):
        return order_list_for_user(user=self.request.user)

    @extend_schema(tags=["orders"], responses={200: OrderOut(many=True), **errors(400, 401)})
    def get(self, request):
        page = self.paginate_queryset(self.get_queryset())
        return self.get_paginated_response(render_orders(page, many=True))

    @extend_schema(
        tags=["orders"],
        request=OrderCreateIn,
        responses={
            201: OrderOut,
            **errors(
                400,
                401,
                415,
                c404="`not_found`: no such compartment",
                c409="`compartment_unavailable`, `cabinet_offline` or `no_price_plan`",
            ),
        },
    )
    def post(self, request):
        data = OrderCreateIn(data=request.data)
        data.is_valid(raise_exception=True)
        order = services.order_create_rental(user=request.user, **data.validated_data)
        return Response(render_orders(order), status=status.HTTP_201_CREATED)


class OrderDetail(APIView):
    @extend_schema(tags=["orders"], responses={200: OrderOut, **errors(401, 404)})
    def get(self, request, order_no: str):
        return Response(render_orders(get_object_or_404(order_list_for_user(user=request.user), order_no=order_no)))


class OrderOpenDoor(APIView):
    """Open the door of your rental: the pickup (the rental completes and the compartment is freed) within
    the pickup code's validity, or open again shortly after it. Past the validity: 402 ``overtime_due``, its
    details naming the overtime order (``order_no``, ``amount_fen``) to pay with ``POST /payments/``; once it
    is paid the door opens and the rental completes."""

    @extend_schema(
        tags=["orders"],
        request=None,
        responses={
            202: DoorOut,
            **errors(
                401,
                404,
                c402="`overtime_due`: the paid time is over; `details` name the overtime order and its amount",
                c409="`order_not_paid`, `rental_abandoned`, `rental_completed`, `compartment_taken`, "
                "`cabinet_offline`, `door_not_yours` or `no_price_plan`",
            ),
        },
    )
    def post(self, request, order_no: str):
        purpose = services.order_open_door(order_no=order_no, user=request.user)
        order = get_object_or_404(order_list_for_user(user=request.user), order_no=order_no)
        return Response(
            {"status": "door_open_sent", "purpose": str(purpose), "order": render_orders(order)},
            status=status.HTTP_202_ACCEPTED,
        )


class OrderCancelIn(StrictSerializer):
    reason = serializers.CharField(max_length=200, required=False, default="cancelled by user", trim_whitespace=False)


class OrderCancel(APIView):
    """Cancel an unpaid order: its open payments are closed at the gateway first (a payment that
    turns out to be paid wins: the order is then paid, and the answer is 409)."""

    @extend_schema(
        tags=["orders"],
        request=OrderCancelIn,
        responses={
            200: OrderOut,
            **errors(
                400,
                401,
                415,
                503,
                c404="`not_found`: no such order of yours",
                c409="`invalid_transition` (not unpaid), `trade_already_paid` (it was paid meanwhile)",
                c502="`gateway_unavailable`: the gateway did not answer, or not verifiably; the payment stays open, "
                "try again",
            ),
        },
    )
    def post(self, request, order_no: str):
        reason = OrderCancelIn(data=request.data)
        reason.is_valid(raise_exception=True)
        order = get_object_or_404(Order, order_no=order_no, user=request.user)
        services.order_cancel_by_user(
            order_id=order.pk, actor=Actor.user(request.user), reason=reason.validated_data["reason"]
        )
        order.refresh_from_db()
        return Response(render_orders(order))


class TopupIn(StrictSerializer):
    amount_fen = serializers.IntegerField()

    def get_fields(self):  # the bounds are settings (WALLET_TOPUP_MIN_FEN / _MAX_FEN), read per request
        fields = super().get_fields()
        fields["amount_fen"] = serializers.IntegerField(
            min_value=settings.WALLET_TOPUP_MIN_FEN, max_value=settings.WALLET_TOPUP_MAX_FEN
        )
        return fields


class TopupCreate(APIView):
    throttle_scope = "topup"

    @extend_schema(
        tags=["wallet"],
        request=TopupIn,
        parameters=[RETRY_AFTER],
        responses={201: OrderOut, **errors(400, 401, 415, 429)},
    )
    def post(self, request):
        data = TopupIn(data=request.data)
        data.is_valid(raise_exception=True)
        order = services.order_create_topup(user=request.user, amount_fen=data.validated_data["amount_fen"])
        return Response(render_orders(order), status=status.HTTP_201_CREATED)
