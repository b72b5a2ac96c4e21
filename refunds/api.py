"""The refunds API: a user asks for a refund of their order and reads its progress (amounts in fen)."""

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import generics, serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from core.api import ORDER_NO_FORMAT, PatternField, StrictSerializer
from core.openapi import RETRY_AFTER, errors
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
    order_no = PatternField(ORDER_NO_FORMAT, max_length=32, trim_whitespace=False)
    amount_fen = serializers.IntegerField(
        min_value=1, max_value=10**12, required=False, help_text="Part of what was paid; without it, all that is left."
    )
    reason = serializers.CharField(max_length=200, trim_whitespace=False)


class RefundListCreate(generics.GenericAPIView):
    serializer_class = RefundOut
    throttle_scope = "refund"  # requests only: listing is not counted

    def get_queryset(self):
        rows = Refund.objects.filter(order__user=self.request.user).select_related("order", "payment")
        order_no = self.request.query_params.get("order_no")
        return rows.filter(order__order_no=order_no) if order_no else rows

    @extend_schema(
        tags=["refunds"],
        parameters=[OpenApiParameter("order_no", str, description="Only this order's refunds.")],
        responses={200: RefundOut(many=True), **errors(400, 401)},
    )
    def get(self, request):
        page = self.paginate_queryset(self.get_queryset())
        return self.get_paginated_response(RefundOut(page, many=True).data)

    @extend_schema(
        tags=["refunds"],
        request=RefundIn,
        parameters=[RETRY_AFTER],
        responses={
            201: RefundOut,
            **errors(
                401,
                415,
                429,
                c402="`insufficient_balance`: a wallet top-up whose money has been spent cannot be refunded",
                c403="`refund_needs_staff`: the rental is in use; ask the staff",
                c404="`not_found`: no such order of yours",
                c400="`invalid_input` or `malformed_request`",
                c409="`not_refundable` (the order is not paid) or `refund_exceeds_paid` (more than is left to refund)",
            ),
        },
    )
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
    @extend_schema(tags=["refunds"], responses={200: RefundOut, **errors(401, 404)})
    def get(self, request, refund_no: str):
        refund = get_object_or_404(
            Refund.objects.select_related("order", "payment"), refund_no=refund_no, order__user=request.user
        )
        return Response(RefundOut(refund).data)
