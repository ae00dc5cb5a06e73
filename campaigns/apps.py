from django.apps import AppConfig
from django.core import checks

from .checks import esp_webhooks_check


class CampaignsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "campaigns"
    verbose_name = "Marketing campaigns"

    def ready(self) -> None:
        from . import receivers  # noqa: F401, PLC0415 - connects the signal receivers

        checks.register(esp_webhooks_check, checks.Tags.security, deploy=True)
