"""The project's assembly: settings, URLs, Celery, WSGI/ASGI. No app imports it; the Celery app is loaded
here so that ``@shared_task`` binds to it in every process."""

from .celery import app as celery_app

__all__ = ("celery_app",)
