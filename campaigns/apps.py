from django.apps import AppConfig


class CampaignsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "campaigns"
    verbose_name = "Marketing campaigns"

    def ready(self) -> None:
        from . import receivers  # noqa: F401, PLC0415 - connects the signal receivers
