from django.shortcuts import get_object_or_404
from rest_framework import generics, serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from config.api import StrictSerializer
from refunds.models import Refund
from refunds.services import refund_request


class RefundOut(serializers.ModelSerializer):
    order_no = serializers.CharField(source="order.order_no")
    payment_no = serializers.CharField(source="payment.payment_no")

    class Meta:
        model = Refund
        fields = (
            "refund_no",
            "order_no",
            "payment_no",
            "amount_fen",
            "reason",
            "status",
            "created_at",
            "decided_at",
            "succeeded_at",
        )


class RefundIn(StrictSerializer):
    order_no = serializers.CharField(max_length=32)
    amount_fen = serializers.IntegerField(min_value=1, max_value=10**12, required=False)
    reason = serializers.CharField(max_length=200)


class RefundListCreate(generics.GenericAPIView):
    serializer_class = RefundOut

    def get_queryset(self):
        rows = Refund.objects.filter(order__user=self.request.user).select_related("order", "payment")
        order_no = self.request.query_params.get("order_no")
        return rows.filter(order__order_no=order_no) if order_no else rows

    def get(self, request):
        page = self.paginate_queryset(self.get_queryset())
        return self.get_paginated_response(RefundOut(page, many=True).data)

    def post(self, request):
        data = RefundIn(data=request.data)
        data.is_valid(raise_exception=True)
        refund = refund_request(
            order_no=data.validated_data["order_no"],
            amount_fen=data.validated_data.get("amount_fen"),
            reason=data.validated_data["reason"],
            requested_by=request.user,
        )
        return Response(RefundOut(refund).data, status=status.HTTP_201_CREATED)


class RefundDetail(APIView):
    def get(self, request, refund_no: str):
        refund = get_object_or_404(
            Refund.objects.select_related("order", "payment"), refund_no=refund_no, order__user=request.user
        )
        return Response(RefundOut(refund).data)
