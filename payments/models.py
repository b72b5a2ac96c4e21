from django.conf import settings
from django.db import models
from django.db.models import F, Q

from config.audit import AuditEvent


class WeChatIdentity(models.Model):
    """The WeChat openid of a user (mini-program login); the payer id of JSAPI payments."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="wechat")
    openid = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = "WeChat identity"
        verbose_name_plural = "WeChat identities"

    def __str__(self) -> str:
        return self.openid


class Channel(models.TextChoices):
    """How a payment is made; the label is what people read (admin, customer pages, reports)."""

    WECHAT_JSAPI = "wechat_jsapi", "WeChat Pay (mini-program)"
    WECHAT_NATIVE = "wechat_native", "WeChat Pay (QR code)"
    WECHAT_H5 = "wechat_h5", "WeChat Pay (H5)"
    ALIPAY_PAGE = "alipay_page", "Alipay (computer)"
    ALIPAY_WAP = "alipay_wap", "Alipay (phone)"
    WALLYT_JSAPI = "wallyt_jsapi", "Wallyt (WeChat mini-program)"
    WALLET = "wallet", "Wallet"
    WECHAT_PAYSCORE = "wechat_payscore", "WeChat Pay Score (pay after use)"  # a ServiceOrder, never a Payment


GATEWAY_LABELS = {"wechat": "WeChat Pay", "alipay": "Alipay", "wallyt": "Wallyt", "wallet": "the wallet"}

# channel -> (gateway, product as the adapter knows it)
CHANNEL_ROUTES = {
    Channel.WECHAT_JSAPI: ("wechat", "jsapi"),
    Channel.WECHAT_NATIVE: ("wechat", "native"),
    Channel.WECHAT_H5: ("wechat", "h5"),
    Channel.ALIPAY_PAGE: ("alipay", "page"),
    Channel.ALIPAY_WAP: ("alipay", "wap"),
    Channel.WALLYT_JSAPI: ("wallyt", "jsapi"),
    Channel.WALLET: ("wallet", "wallet"),
}


class Payment(models.Model):
    class Status(models.TextChoices):
        CREATED = "created"  # intent persisted, gateway not (yet) answered
        PENDING = "pending"  # the gateway has the trade; waiting for the payer
        SUCCEEDED = "succeeded"
        FAILED = "failed"
        CLOSED = "closed"

    OPEN = (Status.CREATED, Status.PENDING)
    TRANSITIONS = {
        Status.CREATED: {Status.PENDING, Status.SUCCEEDED, Status.FAILED, Status.CLOSED},
        Status.PENDING: {Status.SUCCEEDED, Status.FAILED, Status.CLOSED},
        # money that arrives after we gave up on a payment is never lost (DESIGN rule 8)
        Status.FAILED: {Status.SUCCEEDED},
        Status.CLOSED: {Status.SUCCEEDED},
        Status.SUCCEEDED: set(),
    }

    payment_no = models.CharField(max_length=32, unique=True, help_text="Our out_trade_no.")
    order = models.ForeignKey("orders.Order", on_delete=models.PROTECT, related_name="payments")
    channel = models.CharField(max_length=16, choices=Channel.choices)
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.CREATED, db_index=True)
    amount_fen = models.BigIntegerField()
    refunded_fen = models.BigIntegerField(default=0)
    gateway_trade_no = models.CharField(max_length=64, blank=True, db_index=True)
    gateway_state = models.CharField(max_length=32, blank=True, help_text="The gateway's last word.")
    prepay = models.JSONField(default=dict, blank=True, help_text="What the client needs to pay (no secrets).")
    payer_openid = models.CharField(max_length=64, blank=True)
    client_ip = models.GenericIPAddressField(null=True, blank=True)
    flag = models.CharField(
        max_length=32, blank=True, help_text="late_payment / double_payment: money for an order not waiting for it."
    )
    paid_at = models.DateTimeField(null=True, blank=True)
    last_synced_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ("-id",)
        indexes = [
            # reconciliation claims open payments in id order: this index holds only them, so the claim
            # does not walk past every payment already closed (its cost stays flat as they pile up)
            models.Index(fields=("id",), condition=Q(status__in=("created", "pending")), name="payment_open_by_id"),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=("order",), condition=Q(status__in=("created", "pending")), name="payment_one_open_per_order"
            ),
            models.CheckConstraint(condition=Q(amount_fen__gt=0), name="payment_amount_positive"),
            models.CheckConstraint(
                condition=Q(refunded_fen__gte=0, refunded_fen__lte=F("amount_fen")), name="payment_refunded_in_range"
            ),
        ]

    def __str__(self) -> str:
        return self.payment_no

    @property
    def gateway(self) -> str:
        return CHANNEL_ROUTES[self.channel][0]


class ServiceOrder(models.Model):
    """A WeChat Pay Score service order: a rental started without paying and billed after use.

    created (at WeChat, waiting for the user to confirm) -> confirmed (the rental runs) -> completed (we
    sent the final amount; WeChat collects) -> paid (``PAYSCORE.USER_PAID``). Cancelled before use (by us:
    WeChat ``REVOKED``), expired (never confirmed: declined, or 30 days), failed (WeChat refused to
    create it). Only ``payments.payscore`` changes it, one locked and audited transition at a time.
    """

    class Status(models.TextChoices):
        CREATED = "created"
        CONFIRMED = "confirmed"
        COMPLETED = "completed"
        PAID = "paid"
        CANCELLED = "cancelled"
        EXPIRED = "expired"
        FAILED = "failed"

    OPEN = (Status.CREATED, Status.CONFIRMED, Status.COMPLETED)
    TRANSITIONS = {
        Status.CREATED: {Status.CONFIRMED, Status.CANCELLED, Status.EXPIRED, Status.FAILED},
        Status.CONFIRMED: {Status.COMPLETED, Status.PAID, Status.CANCELLED},
        Status.COMPLETED: {Status.PAID, Status.CANCELLED},
        Status.PAID: set(),
        Status.CANCELLED: set(),
        Status.EXPIRED: set(),
        Status.FAILED: set(),
    }

    out_order_no = models.CharField(max_length=32, unique=True, help_text="Our out_order_no at WeChat.")
    order = models.ForeignKey("orders.Order", on_delete=models.PROTECT, related_name="service_orders")
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.CREATED, db_index=True)
    risk_fund_fen = models.BigIntegerField(help_text="The most it can be completed for (risk_fund.amount).")
    total_fen = models.BigIntegerField(null=True, blank=True, help_text="The final amount, set when the rental ended.")
    paid_fen = models.BigIntegerField(default=0)
    billing = models.JSONField(default=dict, blank=True, help_text="How the final amount was priced.")
    package = models.CharField(max_length=256, blank=True, help_text="For the mini-program's confirmation page.")
    gateway_order_id = models.CharField(max_length=64, blank=True)
    gateway_trade_no = models.CharField(max_length=64, blank=True, help_text="The debit's transaction_id.")
    gateway_state = models.CharField(max_length=32, blank=True, help_text="WeChat's last word.")
    payer_openid = models.CharField(max_length=64, blank=True)
    confirmed_at = models.DateTimeField(null=True, blank=True)
    ended_at = models.DateTimeField(null=True, blank=True, help_text="When the rental ended (the amount's end).")
    completed_at = models.DateTimeField(null=True, blank=True, help_text="When WeChat accepted the final amount.")
    paid_at = models.DateTimeField(null=True, blank=True)
    last_synced_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ("-id",)
        constraints = [
            models.UniqueConstraint(
                fields=("order",),
                condition=Q(status__in=("created", "confirmed", "completed", "paid")),
                name="service_order_one_live_per_order",
            ),
            models.CheckConstraint(condition=Q(risk_fund_fen__gt=0), name="service_order_risk_fund_positive"),
            models.CheckConstraint(
                condition=Q(total_fen__isnull=True) | Q(total_fen__gte=0, total_fen__lte=F("risk_fund_fen")),
                name="service_order_total_in_range",
            ),
        ]

    def __str__(self) -> str:
        return self.out_order_no


class ServiceOrderEvent(AuditEvent):
    service_order = models.ForeignKey(ServiceOrder, on_delete=models.PROTECT, related_name="events")


class PaymentEvent(AuditEvent):
    payment = models.ForeignKey(Payment, on_delete=models.PROTECT, related_name="events")


class GatewayNotification(models.Model):
    """The inbox: every notification that reaches it, verified or not, with its outcome (``payments.inbox``)."""

    gateway = models.CharField(max_length=16)
    received_at = models.DateTimeField(auto_now_add=True, db_index=True)
    remote_addr = models.GenericIPAddressField(null=True, blank=True)
    headers = models.JSONField(default=dict)
    body = models.BinaryField(help_text="As received; only the first 4 KiB when it did not verify.")
    body_sha256 = models.CharField(max_length=64, blank=True, help_text="Of the whole body, when it was cut.")
    body_size = models.PositiveIntegerField(null=True, blank=True, help_text="Of the whole body, when it was cut.")
    verified = models.BooleanField(default=False)
    # NULL until verified: unique per gateway, so a second delivery of one event cannot be applied
    event_id = models.CharField(max_length=128, null=True, blank=True)  # noqa: DJ001
    event_type = models.CharField(max_length=64, blank=True)
    parsed = models.JSONField(null=True, blank=True, help_text="What verification and decryption yielded.")
    reference = models.CharField(max_length=64, blank=True, db_index=True, help_text="payment_no or refund_no.")
    payment = models.ForeignKey(Payment, null=True, blank=True, on_delete=models.PROTECT, related_name="notifications")
    duplicate = models.BooleanField(default=False)
    processed_at = models.DateTimeField(null=True, blank=True)
    error = models.TextField(blank=True)

    class Meta:
        ordering = ("-id",)
        constraints = [
            models.UniqueConstraint(fields=("gateway", "event_id"), name="notification_event_once"),
        ]

    def __str__(self) -> str:
        return f"{GATEWAY_LABELS.get(self.gateway, self.gateway)} {self.event_type or '?'} {self.reference}"


class IdempotencyRecord(models.Model):
    """Same key + same body -> the same answer; same key + another body -> 409."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE)
    key = models.CharField(max_length=128)
    request_hash = models.CharField(max_length=64)
    response_status = models.PositiveSmallIntegerField(null=True, blank=True)
    response_body = models.JSONField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=("user", "key"), name="idempotency_key_once_per_user")]

    def __str__(self) -> str:
        return f"{self.user_id}:{self.key}"
