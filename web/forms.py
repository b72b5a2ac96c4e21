"""Page forms. They check the shape of the input; the services check the rules (and say why)."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

from django import forms
from django.conf import settings

from core.errors import DomainError, GatewayUnavailable
from lockers.models import Compartment
from payments.models import Channel

# what the web checkout can offer (JSAPI needs the WeChat in-app browser, so it is not here)
WEB_CHANNELS = [
    (Channel.WECHAT_NATIVE, "WeChat Pay: scan a QR code"),
    (Channel.WECHAT_H5, "WeChat Pay in the mobile browser (H5)"),
    (Channel.ALIPAY_PAGE, "Alipay (computer)"),
    (Channel.ALIPAY_WAP, "Alipay (phone)"),
    (Channel.WALLET, "My wallet"),
    (Channel.WALLYT_JSAPI, "Wallyt mini-program (developer page)"),
]


def channel_name(channel: str) -> str:
    """The channel as people read it (``Channel``'s label: "WeChat Pay (QR code)", "Wallet")."""
    return Channel(channel).label if channel in Channel.values else channel


@dataclass(frozen=True)
class ChannelOffer:
    """The ways this user can finish paying this order, and why any other way is not offered."""

    offered: list[tuple[str, str]]
    missing: dict[str, tuple[str, str]]  # channel -> (label, why)
    disabled: dict[str, str] = field(default_factory=dict)  # offered but not possible now -> why

    @property
    def offered_values(self) -> list[str]:
        return [str(value) for value, _ in self.offered]


def channel_offer(*, has_wechat: bool, is_topup: bool, balance_fen: int, amount_fen: int) -> ChannelOffer:
    """Wallyt pays inside the WeChat mini-program, so it needs the user's WeChat identity (openid);
    a top-up cannot be paid from the wallet; a wallet short of the amount is shown but cannot be
    chosen (top it up first)."""
    offered: list[tuple[str, str]] = []
    missing: dict[str, tuple[str, str]] = {}
    disabled: dict[str, str] = {}
    for value, label in WEB_CHANNELS:
        if value == Channel.WALLYT_JSAPI and not has_wechat:
            missing[value] = (
                label,
                "Wallyt pays inside the WeChat mini-program, which needs a WeChat sign-in: "
                "sign out and sign in with WeChat to use it.",
            )
        elif value == Channel.WALLET and is_topup:
            missing[value] = (label, "A top-up cannot be paid from the wallet itself.")
        else:
            offered.append((value, label))
            if value == Channel.WALLET and balance_fen < amount_fen:
                disabled[value] = "not enough"
    return ChannelOffer(offered=offered, missing=missing, disabled=disabled)


def add_domain_error(form: forms.Form, exc: DomainError, field: str | None = None) -> None:
    """Show a service's refusal on the form: its message, never a 500."""
    if isinstance(exc, GatewayUnavailable):  # its message is for engineers ("answered HTTP 500 ...")
        form.add_error(field, "The payment service cannot be reached right now. Please try again in a moment.")
        return
    form.add_error(field, exc.message)


def fen_from_yuan(value: Decimal) -> int:
    return int((value * 100).to_integral_value())


class WeChatLoginForm(forms.Form):
    code = forms.CharField(
        label="WeChat login code",
        max_length=128,
        strip=True,
        help_text="Sandbox: any word; the same word always signs in the same WeChat user.",
    )


class RentForm(forms.Form):
    compartment = forms.TypedChoiceField(
        coerce=int, error_messages={"required": "Choose a compartment.", "invalid_choice": "Choose a free compartment."}
    )
    hours = forms.IntegerField(
        min_value=1, error_messages={"required": "Say for how many hours.", "invalid": "Hours must be a whole number."}
    )

    def __init__(self, *args, compartments: list[Compartment], **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["compartment"].choices = [(c.pk, c.label) for c in compartments]
        self.fields["hours"].validators.append(_max_hours_validator)  # read now: settings can change
        self.fields["hours"].widget.attrs.update(min=1, max=settings.ORDER_MAX_HOURS)


def _max_hours_validator(value: int) -> None:
    if value > settings.ORDER_MAX_HOURS:
        raise forms.ValidationError(f"At most {settings.ORDER_MAX_HOURS} hours.")


class CheckoutForm(forms.Form):
    channel = forms.ChoiceField(
        choices=WEB_CHANNELS,
        widget=forms.RadioSelect,
        error_messages={"required": "Choose how to pay.", "invalid_choice": "Choose one of the payment methods."},
    )

    def __init__(self, *args, offer: ChannelOffer, **kwargs):
        super().__init__(*args, **kwargs)
        self.offer = offer
        self.fields["channel"].choices = offer.offered

    def clean(self) -> dict:
        """A way that is not offered says why (Wallyt without a WeChat sign-in), not just "invalid"."""
        wanted = self.data.get("channel", "")
        if wanted in self.offer.missing:
            self.errors.pop("channel", None)
            self.add_error("channel", self.offer.missing[wanted][1])
        return super().clean()


class TopupForm(forms.Form):
    amount = forms.DecimalField(
        label="Amount (¥)",
        max_digits=9,
        decimal_places=2,
        error_messages={"required": "Enter an amount.", "invalid": "Enter an amount in yuan, such as 50 or 12.50."},
    )

    def clean_amount(self) -> int:
        fen = fen_from_yuan(self.cleaned_data["amount"])
        low, high = settings.WALLET_TOPUP_MIN_FEN, settings.WALLET_TOPUP_MAX_FEN
        if not low <= fen <= high:
            raise forms.ValidationError(f"Top up between ¥{Decimal(low) / 100:.2f} and ¥{Decimal(high) / 100:.2f}.")
        return fen


class RefundRequestForm(forms.Form):
    amount = forms.DecimalField(
        label="Amount (¥, empty = everything not refunded yet)",
        required=False,
        max_digits=9,
        decimal_places=2,
        min_value=Decimal("0.01"),
        error_messages={"invalid": "Enter an amount in yuan, such as 5 or 2.50.", "min_value": "Enter at least ¥0.01."},
    )
    reason = forms.CharField(max_length=200, strip=True, error_messages={"required": "Tell us why you want a refund."})

    def clean_amount(self) -> int | None:
        value = self.cleaned_data.get("amount")
        return None if value is None else fen_from_yuan(value)
