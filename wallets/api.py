from django.conf import settings
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from core.api import StrictSerializer
from core.openapi import RETRY_AFTER, errors
from orders.api import OrderOut, render_orders
from orders.services import order_create_topup
from wallets.models import WalletTransaction
from wallets.services import wallet_get_or_create


class LedgerOut(serializers.ModelSerializer):
    class Meta:
        model = WalletTransaction
        fields = ("id", "type", "amount_fen", "balance_before_fen", "balance_after_fen", "reference", "created_at")


class WalletOut(serializers.Serializer):
    balance_fen = serializers.IntegerField()
    recent = LedgerOut(many=True, help_text="The 20 latest ledger entries, newest first.")


class WalletView(APIView):
    @extend_schema(tags=["wallet"], responses={200: WalletOut, **errors(401)})
    def get(self, request):
        wallet = wallet_get_or_create(user_id=request.user.pk)
        recent = wallet.transactions.order_by("-id")[:20]
        return Response({"balance_fen": wallet.balance_fen, "recent": LedgerOut(recent, many=True).data})


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
        order = order_create_topup(user=request.user, amount_fen=data.validated_data["amount_fen"])
        return Response(render_orders(order), status=status.HTTP_201_CREATED)
