"""The lockers app: cabinets, compartments, price plans, pickup codes and the door driver (floor 1)."""

from django.apps import AppConfig


class LockersConfig(AppConfig):
    name = "lockers"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from lockers import tasks  # noqa: F401 - register the Celery tasks in every process (web included)
