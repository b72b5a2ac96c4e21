"""Client API for payments: start (with Idempotency-Key), read, sync, close; the QR image."""

from __future__ import annotations

import io
from urllib.parse import urlencode

import qrcode
import qrcode.image.svg
from django.conf import settings
from django.http import HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, PolymorphicProxySerializer, extend_schema
from rest_framework import serializers, status
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from core.api import ORDER_NO_FORMAT, PatternField, StrictSerializer, error_body
from core.audit import Actor
from core.errors import DomainError, GatewayUnavailable
from core.openapi import RETRY_AFTER, errors
from payments import services
from payments.gateways.registry import get_gateway
from payments.idempotency import idempotency_begin, idempotency_finish, idempotency_forget, request_fingerprint
from payments.models import Channel, Payment, ServiceOrder
from payments.payscore import payscore_confirm_params, payscore_start


class PaymentOut(serializers.ModelSerializer):
    order_no = serializers.CharField(source="order.order_no")
    order_status = serializers.CharField(source="order.status")
    pay_params = serializers.SerializerMethodField()
    code_url = serializers.SerializerMethodField()
    qr_url = serializers.SerializerMethodField()
    h5_url = serializers.SerializerMethodField()
    pay_url = serializers.SerializerMethodField()

    class Meta:
        model = Payment
        fields = (
            "payment_no",
            "order_no",
            "order_status",
            "channel",
            "status",
            "amount_fen",
            "refunded_fen",
            "pay_params",
            "code_url",
            "qr_url",
            "h5_url",
            "pay_url",
            "gateway_trade_no",
            "paid_at",
            "created_at",
        )

    def _prepay(self, obj, key):
        return obj.prepay.get(key) if obj.status in Payment.OPEN else None

    def get_pay_params(self, obj) -> dict | None:
        return self._prepay(obj, "pay_params")

    def get_code_url(self, obj) -> str | None:
        return self._prepay(obj, "code_url")

    def get_qr_url(self, obj) -> str | None:
        return f"/api/v1/payments/{obj.payment_no}/qr.svg" if self._prepay(obj, "code_url") else None

    def get_h5_url(self, obj) -> str | None:
        return self._prepay(obj, "h5_url")

    def get_pay_url(self, obj) -> str | None:
        return self._prepay(obj, "pay_url")


class ServiceOrderOut(serializers.ModelSerializer):
    """A rental started without paying (channel ``wechat_payscore``): a WeChat Pay Score service order."""

    order_no = serializers.CharField(source="order.order_no")
    order_status = serializers.CharField(source="order.status")
    channel = serializers.SerializerMethodField()
    confirm = serializers.SerializerMethodField(
        help_text="While `created`: `wx.openBusinessView({businessType, extraData})` for the user to confirm."
    )

    class Meta:
        model = ServiceOrder
        fields = (
            "out_order_no",
            "order_no",
            "order_status",
            "channel",
            "status",
            "risk_fund_fen",
            "total_fen",
            "paid_fen",
            "confirm",
            "confirmed_at",
            "paid_at",
            "created_at",
        )

    def get_channel(self, obj) -> str:
        return Channel.WECHAT_PAYSCORE

    def get_confirm(self, obj) -> dict | None:
        return payscore_confirm_params(obj)


def _own_payment(request, payment_no: str) -> Payment:
    return get_object_or_404(Payment.objects.select_related("order"), payment_no=payment_no, order__user=request.user)


def _client_ip(request) -> str | None:
    return request.META.get("REMOTE_ADDR")


class PaymentCreateIn(StrictSerializer):
    order_no = PatternField(ORDER_NO_FORMAT, max_length=32, trim_whitespace=False)
    channel = serializers.ChoiceField(choices=Channel.choices)
    openid = PatternField(
        r"^[A-Za-z0-9_-]+$",  # WeChat openids are URL-safe base64 (it goes into the gateway's XML/JSON as is)
        max_length=64,
        required=False,
        trim_whitespace=False,
        help_text="JSAPI channels: the payer's openid (default: the one of your WeChat login).",
    )


IDEMPOTENCY_KEY = OpenApiParameter(
    "Idempotency-Key",
    {"type": "string", "pattern": r"^[!-~]([ -~]*[!-~])?$", "minLength": 1, "maxLength": 128},
    OpenApiParameter.HEADER,
    description="Makes retries safe: the same key and body get the same answer; the same key with another "
    "body gets 409 `idempotency_key_reused`. 1 to 128 visible ASCII characters.",
)
PAYMENT_ERRORS = {
    502: "`gateway_unavailable`: the gateway did not answer, or not verifiably; the payment stays open, try again",
}


class PaymentCreate(APIView):
    """Start paying an order. Send an ``Idempotency-Key`` header to make retries safe. Channel
    ``wechat_payscore`` starts the rental without paying (WeChat Pay Score): the answer is the service
    order, with ``confirm`` for the mini-program; the rental is billed for the time used at pickup."""

    throttle_scope = "payment_create"

    @extend_schema(
        tags=["payments"],
        request=PaymentCreateIn,
        parameters=[IDEMPOTENCY_KEY, RETRY_AFTER],
        responses={
            201: PolymorphicProxySerializer(
                component_name="PaymentStarted",
                serializers=[PaymentOut, ServiceOrderOut],
                resource_type_field_name=None,
            ),
            **errors(
                400,
                401,
                402,
                415,
                429,
                503,
                c404="`not_found`: no such order of yours",
                c409="`order_not_payable`, `order_expired`, `payment_in_progress` (close the open payment first), "
                "`channel_not_allowed` (a top-up from the wallet), `openid_required` (a JSAPI channel without a "
                "WeChat login), `gateway_rejected`, `idempotency_key_reused`, `idempotency_in_progress`",
                c502=PAYMENT_ERRORS[502],
            ),
        },
    )
    def post(self, request):
        data = PaymentCreateIn(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        key = request.headers.get("Idempotency-Key")
        record = None
        if key is not None:
            record, replay = idempotency_begin(user=request.user, key=key, fingerprint=request_fingerprint(values))
            if replay:
                return Response(record.response_body, status=record.response_status)
        try:
            if values["channel"] == Channel.WECHAT_PAYSCORE:  # pay after use: a service order, not a payment
                started = payscore_start(user=request.user, order_no=values["order_no"])
                response_status, body = status.HTTP_201_CREATED, ServiceOrderOut(started).data
            else:
                payment = self._start(request, values)
                response_status, body = status.HTTP_201_CREATED, PaymentOut(payment).data
        except GatewayUnavailable:
            if record:
                idempotency_forget(record)
            raise
        except DomainError as exc:
            if record:
                idempotency_finish(record, status=exc.http_status, body=error_body(exc.code, exc.message, exc.details))
            raise
        if record:
            idempotency_finish(record, status=response_status, body=body)
        return Response(body, status=response_status)

    def _start(self, request, values) -> Payment:
        openid = values.get("openid", "")
        if not openid and values["channel"] in (Channel.WECHAT_JSAPI, Channel.WALLYT_JSAPI):
            identity = getattr(request.user, "wechat", None)
            openid = identity.openid if identity else ""
        start = services.PaymentStart(
            order_no=values["order_no"], channel=values["channel"], openid=openid, client_ip=_client_ip(request)
        )
        return services.payment_start(user=request.user, request=start)


class PaymentDetail(APIView):
    @extend_schema(tags=["payments"], responses={200: PaymentOut, **errors(401, 404)})
    def get(self, request, payment_no: str):
        return Response(PaymentOut(_own_payment(request, payment_no)).data)


class PaymentSync(APIView):
    """Ask the gateway now (the notification may be late) and apply the answer."""

    throttle_scope = "payment_sync"

    @extend_schema(
        tags=["payments"],
        request=None,
        parameters=[RETRY_AFTER],
        responses={
            200: PaymentOut,
            **errors(401, 404, 429, 503, c409="`gateway_rejected`", c502=PAYMENT_ERRORS[502]),
        },
    )
    def post(self, request, payment_no: str):
        payment = _own_payment(request, payment_no)
        services.payment_sync(payment_no=payment.payment_no, actor=Actor.user(request.user))
        return Response(PaymentOut(_own_payment(request, payment_no)).data)


class PaymentClose(APIView):
    throttle_scope = "payment_sync"

    @extend_schema(
        tags=["payments"],
        request=None,
        parameters=[RETRY_AFTER],
        responses={
            200: PaymentOut,
            **errors(
                401,
                404,
                429,
                503,
                c409="`trade_already_paid` (the payment is then applied), `invalid_transition`, `gateway_rejected`",
                c502=PAYMENT_ERRORS[502],
            ),
        },
    )
    def post(self, request, payment_no: str):
        payment = _own_payment(request, payment_no)
        services.payment_close(payment_no=payment.payment_no, actor=Actor.user(request.user), reason="closed by user")
        return Response(PaymentOut(_own_payment(request, payment_no)).data)


class PaymentQr(APIView):
    @extend_schema(
        tags=["payments"],
        responses={
            (200, "image/svg+xml"): OpenApiResponse(
                OpenApiTypes.BINARY, description="The Native `code_url` as a QR code."
            ),
            **errors(401, c404="`not_found`: no such payment of yours, or it has no open QR code"),
        },
    )
    def get(self, request, payment_no: str):
        payment = _own_payment(request, payment_no)
        code_url = payment.prepay.get("code_url") if payment.status in Payment.OPEN else None
        if not code_url:
            return Response(error_body("not_found", "No QR code for this payment."), status=404)
        return HttpResponse(qr_svg(code_url), content_type="image/svg+xml")


def qr_svg(text: str) -> bytes:
    buffer = io.BytesIO()
    qrcode.make(text, image_factory=qrcode.image.svg.SvgPathImage, box_size=10, border=2).save(buffer)
    return buffer.getvalue()


class AlipayReturnQuery(serializers.Serializer):
    """The signed parameters Alipay appends to the return URL (others it may add are signed too)."""

    out_trade_no = serializers.CharField()
    sign = serializers.CharField()
    sign_type = serializers.CharField()
    app_id = serializers.CharField()


class AlipayReturn(APIView):
    """Where Alipay sends the payer back. The signature is verified; the state comes from our
    records (synced with the gateway if the notification is late), then we redirect to the page."""

    authentication_classes: list = []
    permission_classes = [AllowAny]

    @extend_schema(
        tags=["payments"],
        auth=[],
        parameters=[AlipayReturnQuery],
        responses={
            (302, "text/html"): OpenApiResponse(
                description="To `PAYMENT_RESULT_URL` with `outTradeNo`, `orderNo` and `status` (our records' word).",
                response=None,
            ),
            **errors(
                400,
                503,
                c401="`signature_invalid`: the parameters are not signed by Alipay",
                c404="`not_found`: no such payment",
                c502=PAYMENT_ERRORS[502],
            ),
        },
    )
    def get(self, request):
        gateway = get_gateway("alipay")
        returned = gateway.verify_return(request.query_params.dict())  # SignatureInvalid -> 401
        payment = services.payment_after_return(returned=returned, actor=Actor.gateway("alipay"))  # checked
        out_trade_no = returned.payment_no
        result = payment.status if payment else "unknown"
        order_no = payment.order.order_no if payment else ""
        query = urlencode({"outTradeNo": out_trade_no, "orderNo": order_no, "status": result})
        return HttpResponseRedirect(f"{settings.PAYMENT_RESULT_URL}?{query}")
