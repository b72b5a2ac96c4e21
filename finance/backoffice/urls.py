"""Back-office URLs, mounted under the refund queue (``/admin/refunds/refund/``) by ``finance/admin.py``
(``RefundAdmin.url_providers``)."""

from __future__ import annotations

from functools import partial, update_wrapper

from django.urls import URLPattern, path

from finance.backoffice import settlement, views


def backoffice_urls(admin_site) -> list[URLPattern]:
    def wrap(view, **kwargs):
        bound = update_wrapper(partial(view, admin_site=admin_site, **kwargs), view)
        return admin_site.admin_view(bound)

    return [
        path("dashboard/", wrap(views.dashboard_view), name="backoffice_dashboard"),
        path("settlement/", wrap(settlement.settlement_view), name="backoffice_settlement"),
        path("audit-log/", wrap(views.audit_log_view), name="backoffice_audit_log"),
        path("export/", wrap(views.export_view), name="backoffice_export"),
        path("request/", wrap(views.request_refund_view), name="refunds_refund_request"),
        path(
            "payment-timeline/<int:payment_id>/",
            wrap(views.payment_timeline_view),
            name="backoffice_payment_timeline",
        ),
    ]
