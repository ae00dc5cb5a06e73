from django.apps import AppConfig
from django.core.signals import request_finished

from shop.signals import user_forgotten


class RecommendationsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "recommendations"
    verbose_name = "Recommendations"

    def ready(self) -> None:
        from .impressions import drain_if_due  # noqa: PLC0415 - the app's own receivers, once models are ready
        from .receivers import on_user_forgotten  # noqa: PLC0415

        user_forgotten.connect(on_user_forgotten, dispatch_uid="recommendations.user_forgotten")
        # impressions queued past the threshold are written once the response is out
        request_finished.connect(drain_if_due, dispatch_uid="recommendations.impressions_drain")
