"""The finance back office: dashboard, audit log, timelines and CSV exports, mounted in Django admin
through ``RefundAdmin.get_urls()`` (see ``finance/backoffice/urls.py``). Read-only: every change
goes through the services."""
