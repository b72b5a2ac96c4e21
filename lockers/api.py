"""The lockers API: cabinets, their compartments (free ones to choose from) and the server's price quote."""

from django.conf import settings
from django.db.models import Count, Q
from drf_spectacular.utils import extend_schema
from rest_framework import generics, serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from core.api import StrictQuerySerializer
from core.openapi import errors
from lockers.models import Cabinet, Compartment, PricePlan, Size
from lockers.pricing import price_quote


class CabinetOut(serializers.ModelSerializer):
    free_count = serializers.IntegerField(read_only=True)

    class Meta:
        model = Cabinet
        fields = ("id", "code", "name", "location", "is_online", "free_count")


class CompartmentOut(serializers.ModelSerializer):
    price_per_hour_fen = serializers.SerializerMethodField()

    class Meta:
        model = Compartment
        fields = ("id", "cabinet_id", "label", "size", "status", "price_per_hour_fen")

    def get_price_per_hour_fen(self, obj) -> int | None:
        return self.context["prices"].get(obj.size)


@extend_schema(tags=["lockers"], responses={200: CabinetOut(many=True), **errors(401)})
class CabinetList(generics.ListAPIView):
    serializer_class = CabinetOut
    pagination_class = None

    def get_queryset(self):
        return Cabinet.objects.annotate(
            free_count=Count("compartments", filter=Q(compartments__status="free"))
        ).order_by("code")


class CompartmentFilter(StrictQuerySerializer):
    size = serializers.ChoiceField(choices=Size.choices, required=False)
    status = serializers.ChoiceField(choices=Compartment.Status.choices, required=False)


@extend_schema(
    tags=["lockers"],
    parameters=[CompartmentFilter],
    responses={200: CompartmentOut(many=True), **errors(400, 401, 404)},
)
class CompartmentList(generics.ListAPIView):
    serializer_class = CompartmentOut
    pagination_class = None

    def get_queryset(self):
        cabinet = generics.get_object_or_404(Cabinet, pk=self.kwargs["cabinet_id"])
        filters = CompartmentFilter(data=self.request.query_params.dict())
        filters.is_valid(raise_exception=True)
        return cabinet.compartments.filter(**filters.validated_data)

    def get_serializer_context(self):
        prices = dict(PricePlan.objects.filter(is_active=True).values_list("size", "price_per_hour_fen"))
        return {**super().get_serializer_context(), "prices": prices}


class RentalHoursMixin:
    """``hours``: 1 to ``ORDER_MAX_HOURS``, a setting read when the serializer is built (so the
    OpenAPI document says the same bound the pricing enforces)."""

    def get_fields(self):
        fields = super().get_fields()
        fields["hours"] = serializers.IntegerField(min_value=1, max_value=settings.ORDER_MAX_HOURS)
        return fields


class QuoteIn(RentalHoursMixin, StrictQuerySerializer):
    compartment_id = serializers.IntegerField(min_value=1, max_value=2**63 - 1)


class QuoteOut(serializers.Serializer):
    size = serializers.ChoiceField(choices=Size.choices)
    hours = serializers.IntegerField(help_text="Hours asked for.")
    billed_hours = serializers.IntegerField(help_text="Hours billed: at least the plan's minimum.")
    price_per_hour_fen = serializers.IntegerField()
    cap_fen = serializers.IntegerField(help_text="The most a rental of this size costs, whatever the hours.")
    amount_fen = serializers.IntegerField(help_text="What the order would cost, in fen.")


class QuoteView(APIView):
    """The server-computed total for a compartment and a number of hours (nothing is reserved)."""

    @extend_schema(
        tags=["lockers"],
        parameters=[QuoteIn],
        responses={200: QuoteOut, **errors(400, 401, 404, c409="`no_price_plan`: this size has no active price")},
    )
    def get(self, request):
        data = QuoteIn(data=request.query_params.dict())
        data.is_valid(raise_exception=True)
        compartment = generics.get_object_or_404(Compartment, pk=data.validated_data["compartment_id"])
        quote = price_quote(
            size=compartment.size, hours=data.validated_data["hours"], max_hours=settings.ORDER_MAX_HOURS
        )
        return Response(quote.as_dict())
