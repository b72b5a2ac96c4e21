from django.conf import settings
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from config.api import StrictSerializer
from orders.api import render_orders
from orders.services import order_create_topup
from wallets.models import WalletTransaction
from wallets.services import wallet_get_or_create


class LedgerOut(serializers.ModelSerializer):
    class Meta:
        model = WalletTransaction
        fields = ("id", "type", "amount_fen", "balance_before_fen", "balance_after_fen", "reference", "created_at")


class WalletView(APIView):
    def get(self, request):
        wallet = wallet_get_or_create(user_id=request.user.pk)
        recent = wallet.transactions.order_by("-id")[:20]
        return Response({"balance_fen": wallet.balance_fen, "recent": LedgerOut(recent, many=True).data})


class TopupIn(StrictSerializer):
    amount_fen = serializers.IntegerField()

    def validate_amount_fen(self, value: int) -> int:
        low, high = settings.WALLET_TOPUP_MIN_FEN, settings.WALLET_TOPUP_MAX_FEN
        if not low <= value <= high:
            raise serializers.ValidationError(f"Must be between {low} and {high} fen.")
        return value


class TopupCreate(APIView):
    serializer_class = TopupIn

    def post(self, request):
        data = TopupIn(data=request.data)
        data.is_valid(raise_exception=True)
        order = order_create_topup(user=request.user, amount_fen=data.validated_data["amount_fen"])
        return Response(render_orders(order), status=status.HTTP_201_CREATED)
