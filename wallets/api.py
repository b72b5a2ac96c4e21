"""The wallet API: balance and the latest ledger entries (top-ups are orders: ``orders.api.TopupCreate``)."""

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from core.openapi import errors
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
