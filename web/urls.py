"""The customer pages' URLs (namespace ``web``)."""

from django.urls import path

from web import orders_views, views

app_name = "web"

urlpatterns = [
    path("", views.cabinets, name="cabinets"),
    path("login/", views.login_view, name="login"),
    path("logout/", views.logout_view, name="logout"),
    path("cabinets/<int:cabinet_id>/", views.cabinet_detail, name="cabinet"),
    path("quote/", views.quote_json, name="quote"),
    path("orders/", orders_views.orders, name="orders"),
    path("orders/<str:order_no>/checkout/", views.checkout, name="checkout"),
    path("orders/<str:order_no>/wait/", views.wait, name="wait"),
    path("orders/<str:order_no>/status/", views.status_json, name="status"),
    path("orders/<str:order_no>/sync/", views.sync, name="sync"),
    path("orders/<str:order_no>/open-door/", views.open_door, name="open-door"),
    path("orders/<str:order_no>/cancel/", views.cancel, name="cancel"),
    path("orders/<str:order_no>/retry/", views.retry, name="retry"),
    path("orders/<str:order_no>/refund/", orders_views.refund, name="refund"),
    path("orders/<str:order_no>/payments/<str:payment_no>/close/", views.payment_change, name="payment-change"),
    path("pay/result/", views.result, name="result"),
    path("wallet/", views.wallet, name="wallet"),
]
