"""What people read in the back office and on the customer pages: the site's and models' names,
money in yuan in every list and detail page, one time zone (also inside the numbers we make),
a favicon, channel names."""

import datetime as dt
import re
from zoneinfo import ZoneInfo

import pytest
from django.apps import apps
from django.conf import settings
from django.contrib import admin
from django.test import override_settings
from django.urls import reverse

from orders.services import order_no_new
from payments.models import Channel
from refunds.tests.test_admin_helpers import paid_wallet_order, paid_wechat_order, requested_refund, staff_in

pytestmark = pytest.mark.django_db


def test_the_admin_site_and_every_model_have_proper_names(admin_client):
    page = admin_client.get(reverse("admin:index")).content.decode()
    assert "<title>Site administration" not in page and "Django administration" not in page
    assert ">Locker payments back office</a>" in page and "Orders, payments, refunds and settlement" in page
    assert "WeChat identities" in page and "We chat" not in page
    for model in admin.site._registry:
        singular, plural = str(model._meta.verbose_name), str(model._meta.verbose_name_plural)
        assert not re.search(r"[^aeiou]ys$", plural), plural  # "identitys", "discrepancys"
        assert "We chat" not in singular and not singular.endswith(" fen"), singular
    # the admin's sections follow the apps: the bills moved from refunds to finance (issue 14)
    assert apps.get_app_config("refunds").verbose_name == "Refunds"
    assert apps.get_app_config("finance").verbose_name == "Bills and settlement"
    assert "Bills and settlement" in page


def test_channels_have_names_people_read():
    assert Channel.WALLET.label == "Wallet" and Channel.WECHAT_NATIVE.label == "WeChat Pay (QR code)"
    assert all(label[0].isupper() for label in Channel.labels)


def test_favicon_is_served():
    from django.test import Client

    client = Client()
    response = client.get("/favicon.ico")
    assert response.status_code == 302
    icon = client.get(response["Location"])
    assert icon.status_code == 200 and b"".join(icon.streaming_content)[:4] == b"\x00\x00\x01\x00"  # an ICO


def test_every_list_and_detail_page_shows_money_in_yuan(admin_client):
    order, payment = paid_wechat_order()
    wallet_order, _ = paid_wallet_order(fen=332_271)
    requested_refund(order, amount_fen=250)
    pages = {
        "payments": admin_client.get(reverse("admin:payments_payment_changelist")),
        "payment": admin_client.get(reverse("admin:payments_payment_change", args=[payment.pk])),
        "orders": admin_client.get(reverse("admin:orders_order_changelist")),
        "order": admin_client.get(reverse("admin:orders_order_change", args=[order.pk])),
        "wallets": admin_client.get(reverse("admin:wallets_wallet_changelist")),
        "wallet": admin_client.get(reverse("admin:wallets_wallet_change", args=[wallet_order.user.wallet.pk])),
        "ledger": admin_client.get(reverse("admin:wallets_wallettransaction_changelist")),
        "refunds": admin_client.get(reverse("admin:refunds_refund_changelist")),
        "price plans": admin_client.get(reverse("admin:lockers_priceplan_changelist")),
    }
    for name, response in pages.items():
        assert response.status_code == 200, name
        text = response.content.decode()
        assert "¥" in text, name
        assert not re.search(r"(?i)>\s*(amount|balance|refunded|price per hour|cap) fen\b", text), name
    assert "¥10.00" in pages["payments"].content.decode() and "¥3,322.71" in pages["ledger"].content.decode()
    assert "¥2.50" in pages["refunds"].content.decode()
    assert "WeChat Pay (QR code)" in pages["payments"].content.decode()
    detail = pages["payment"].content.decode()
    assert '<div class="readonly">¥10.00</div>' in detail and "<label>Amount:</label>" in detail


def test_one_time_zone_for_people_and_for_the_numbers_we_make():
    assert settings.TIME_ZONE == "Asia/Shanghai" and settings.USE_TZ
    # 23:30 UTC is 07:30 the next day in Shanghai: the number carries the day a clerk sees
    late = dt.datetime(2026, 5, 1, 23, 30, 5, tzinfo=dt.UTC)
    assert order_no_new("LK", now=late).startswith("LK20260502073005")
    with override_settings(TIME_ZONE="Europe/Berlin"):
        from django.utils import timezone

        timezone.activate(ZoneInfo("Europe/Berlin"))
        try:
            assert order_no_new("PY", now=late).startswith("PY20260502013005")
        finally:
            timezone.deactivate()


def test_admin_pages_show_times_in_the_time_zone(admin_client):
    _, payment = paid_wechat_order()
    local = payment.paid_at.astimezone(ZoneInfo(settings.TIME_ZONE))
    page = admin_client.get(reverse("admin:payments_payment_change", args=[payment.pk])).content.decode()
    assert local.strftime("%Y-%m-%d %H:%M:%S CST") in page  # as the payment number carries it


def test_finance_reaches_the_settlement_report_from_the_index_support_does_not(client):
    client.force_login(staff_in("finance"))
    assert 'id="bo-settlement-link"' in client.get(reverse("admin:index")).content.decode()
    client.force_login(staff_in("support"))
    assert 'id="bo-settlement-link"' not in client.get(reverse("admin:index")).content.decode()
