from django.shortcuts import get_object_or_404
from rest_framework import generics, serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from config.api import StrictSerializer
from orders import services
from orders.models import Order
from orders.selectors import order_list_for_user, pickup_codes_for


class OrderOut(serializers.ModelSerializer):
    compartment = serializers.SerializerMethodField()
    pickup_code = serializers.SerializerMethodField()

    class Meta:
        model = Order
        fields = (
            "order_no",
            "kind",
            "status",
            "amount_fen",
            "hours",
            "pricing",
            "compartment",
            "pickup_code",
            "expires_at",
            "paid_at",
            "rental_ends_at",
            "created_at",
        )

    def get_compartment(self, obj) -> dict | None:
        c = obj.compartment
        return None if c is None else {"id": c.pk, "cabinet": c.cabinet.code, "label": c.label, "size": c.size}

    def get_pickup_code(self, obj) -> str | None:
        return self.context["codes"].get(obj.order_no)


def render_orders(orders, *, many: bool = False):
    items = list(orders) if many else [orders]
    codes = pickup_codes_for(order_nos=[o.order_no for o in items])
    data = OrderOut(items, many=True, context={"codes": codes}).data
    return data if many else data[0]


class OrderCreateIn(StrictSerializer):
    compartment_id = serializers.IntegerField(min_value=1, max_value=2**63 - 1)
    hours = serializers.IntegerField(min_value=1, max_value=10_000)


class OrderListCreate(generics.GenericAPIView):
    serializer_class = OrderOut

    def get_queryset(self):
        return order_list_for_user(user=self.request.user)

    def get(self, request):
        page = self.paginate_queryset(self.get_queryset())
        return self.get_paginated_response(render_orders(page, many=True))

    def post(self, request):
        data = OrderCreateIn(data=request.data)
        data.is_valid(raise_exception=True)
        order = services.order_create_rental(user=request.user, **data.validated_data)
        return Response(render_orders(order), status=status.HTTP_201_CREATED)


class OrderDetail(APIView):
    def get(self, request, order_no: str):
        return Response(render_orders(get_object_or_404(order_list_for_user(user=request.user), order_no=order_no)))


class OrderOpenDoor(APIView):
    def post(self, request, order_no: str):
        services.order_open_door(order_no=order_no, user=request.user)
        return Response({"status": "door_open_sent"}, status=status.HTTP_202_ACCEPTED)
