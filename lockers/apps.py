from django.apps import AppConfig


class LockersConfig(AppConfig):
    name = "lockers"
    default_auto_field = "django.db.models.BigAutoField"
