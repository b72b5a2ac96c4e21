"""The refunds app: refunds and their approval (maker-checker). ``ready()`` registers how payments' refund
words and late or double payments are handled (``payments.hooks``) and the Celery tasks."""

from django.apps import AppConfig


class RefundsConfig(AppConfig):
    name = "refunds"
    verbose_name = "Refunds"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from payments import hooks
        from refunds import tasks  # register the Celery tasks in every process (web included)
        from refunds.services import refund_apply_gateway_status

        # payments meets refund words and late / double payments; refunds says how they are handled
        hooks.register_refund_status_handler(refund_apply_gateway_status)
        hooks.register_flagged_payment_refund(tasks.refund_flagged_payment_send)
