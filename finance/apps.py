"""The ``finance`` app's configuration: its Celery tasks are registered in every process."""

from django.apps import AppConfig


class FinanceConfig(AppConfig):
    """Bills, reconciliation of bills, settlement and the back office's finance pages."""

    name = "finance"
    verbose_name = "Bills and settlement"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from finance import tasks  # noqa: F401 - register the Celery tasks in every process (web included)
