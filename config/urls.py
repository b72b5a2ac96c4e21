"""The URLs of the whole project: the API (``/api/v1/``), its OpenAPI document, the admin and back office,
the gateways' notifications, ``/metrics``, ``/healthz`` and the customer pages (``web.urls``)."""

from django.conf import settings
from django.contrib import admin
from django.db import connection
from django.http import JsonResponse
from django.templatetags.static import static
from django.urls import include, path
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from core import token_admin
from core.admin import INDEX_TITLE, SITE_HEADER, SITE_TITLE
from core.api import ApiDocsPermission
from core.throttling import throttle_page
from finance.metrics import metrics_view
from lockers.api import CabinetList, CompartmentList, QuoteView
from orders.api import OrderCancel, OrderDetail, OrderListCreate, OrderOpenDoor, TopupCreate
from payments.api import AlipayReturn, PaymentClose, PaymentCreate, PaymentDetail, PaymentQr, PaymentSync
from payments.auth import LogoutView, PasswordLoginView, TokenRefreshView, WeChatLoginView
from payments.webhooks import notify_view
from refunds.api import RefundDetail, RefundListCreate
from wallets.api import WalletView


def healthz(request):
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except Exception as exc:  # noqa: BLE001 - any failure means "not healthy"
        return JsonResponse({"status": "error", "database": type(exc).__name__}, status=503)
    return JsonResponse({"status": "ok", "database": "ok"})


api_v1 = [
    path("auth/wechat/login", WeChatLoginView.as_view(), name="auth-wechat-login"),
    path("auth/token", PasswordLoginView.as_view(), name="auth-token"),
    path("auth/token/refresh", TokenRefreshView.as_view(), name="auth-token-refresh"),
    path("auth/logout", LogoutView.as_view(), name="auth-logout"),
    path("lockers/cabinets/", CabinetList.as_view(), name="cabinet-list"),
    path("lockers/cabinets/<int:cabinet_id>/compartments/", CompartmentList.as_view(), name="compartment-list"),
    path("lockers/quote/", QuoteView.as_view(), name="quote"),
    path("orders/", OrderListCreate.as_view(), name="order-list"),
    path("orders/<str:order_no>/", OrderDetail.as_view(), name="order-detail"),
    path("orders/<str:order_no>/cancel/", OrderCancel.as_view(), name="order-cancel"),
    path("orders/<str:order_no>/open-door/", OrderOpenDoor.as_view(), name="order-open-door"),
    path("wallet/", WalletView.as_view(), name="wallet"),
    path("wallet/topups/", TopupCreate.as_view(), name="wallet-topup"),
    path("payments/", PaymentCreate.as_view(), name="payment-create"),
    path("payments/notify/<str:gateway_name>/", notify_view, name="payment-notify"),
    path("payments/return/alipay/", AlipayReturn.as_view(), name="payment-return-alipay"),
    path("payments/<str:payment_no>/", PaymentDetail.as_view(), name="payment-detail"),
    path("payments/<str:payment_no>/sync/", PaymentSync.as_view(), name="payment-sync"),
    path("payments/<str:payment_no>/close/", PaymentClose.as_view(), name="payment-close"),
    path("payments/<str:payment_no>/qr.svg", PaymentQr.as_view(), name="payment-qr"),
    path("refunds/", RefundListCreate.as_view(), name="refund-list"),
    path("refunds/<str:refund_no>/", RefundDetail.as_view(), name="refund-detail"),
]

token_admin.install(admin.site)
admin.site.site_header = SITE_HEADER
admin.site.site_title = SITE_TITLE
admin.site.index_title = INDEX_TITLE
# the back office's sign-in (finance approves refunds there) has the same limits as the other logins
admin.site.login = throttle_page("login")(admin.site.login)


class FaviconView(RedirectView):
    """``/favicon.ico``, which browsers ask for on every page: to the static file (hashed in production)."""

    permanent = False  # the hashed name changes with the icon: let browsers ask again

    def get_redirect_url(self, *args, **kwargs) -> str:
        return static("favicon.ico")


urlpatterns = [
    path("favicon.ico", FaviconView.as_view(), name="favicon"),
    path("healthz", healthz, name="healthz"),
    path("metrics", metrics_view, name="metrics"),
    path("admin/", admin.site.urls),
    path("api/v1/", include(api_v1)),
    path("api/schema/", SpectacularAPIView.as_view(permission_classes=[ApiDocsPermission]), name="schema"),
    path(
        "api/docs/",
        SpectacularSwaggerView.as_view(url_name="schema", permission_classes=[ApiDocsPermission]),
        name="swagger",
    ),
    path("", include("web.urls")),
]

handler404 = "core.api.json_not_found"
handler500 = "core.api.json_server_error"

if settings.DEBUG:
    from django.contrib.staticfiles.urls import staticfiles_urlpatterns

    urlpatterns += staticfiles_urlpatterns()
