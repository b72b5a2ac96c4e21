"""The project's URLs with the bill admin registered first (until ``refunds/admin.py`` imports it)."""

from django.contrib import admin
from django.urls import path

import finance.admin  # noqa: F401 - registers the bill models before the admin URLs are built
from config.urls import urlpatterns as project_urlpatterns

urlpatterns = [path("admin/", admin.site.urls), *project_urlpatterns]
