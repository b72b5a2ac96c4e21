"""The Celery app: configured from Django's settings (``CELERY_*``), tasks found in every app."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("locker")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

from core.logging import connect_celery_task_context  # noqa: E402 - after the app exists

connect_celery_task_context()  # task_id and task name on every line a task logs
