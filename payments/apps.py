"""The payments app (floor 3): registers its system checks, Celery tasks, and its part in an owner's cancel
(``orders.hooks.on_user_cancel``)."""

from django.apps import AppConfig


class PaymentsConfig(AppConfig):
    name = "payments"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from orders.hooks import on_user_cancel
        from payments import checks, tasks  # noqa: F401 - register the system checks and the Celery tasks
        from payments.services import payments_close_for_cancel

        on_user_cancel(payments_close_for_cancel)  # an owner's cancel closes the order's payments first
