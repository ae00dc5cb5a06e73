from django.apps import AppConfig
from django.core.signals import request_finished
from django.db.models.signals import m2m_changed, post_delete, post_save

from shop.signals import serving_started, user_forgotten


class RecommendationsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "recommendations"
    verbose_name = "Recommendations"

    def ready(self) -> None:
        from .impressions import drain_if_due  # noqa: PLC0415 - the app's own receivers, once models are ready
        from .models import MerchandisingRule, Placement  # noqa: PLC0415
        from .receivers import on_merchandising_changed, on_serving_started, on_user_forgotten  # noqa: PLC0415

        user_forgotten.connect(on_user_forgotten, dispatch_uid="recommendations.user_forgotten")
        serving_started.connect(on_serving_started, dispatch_uid="recommendations.serving_started")
        # placements and merchandising rules are cached per serving epoch
        for model in (Placement, MerchandisingRule):
            for name, signal in (("save", post_save), ("delete", post_delete)):
                uid = f"recommendations.merch.{model.__name__}.{name}"
                signal.connect(on_merchandising_changed, sender=model, dispatch_uid=uid)
        m2m_changed.connect(
            on_merchandising_changed, sender=MerchandisingRule.placements.through, dispatch_uid="rec.merch.m2m"
        )
        # impressions queued past the threshold are written once the response is out
        request_finished.connect(drain_if_due, dispatch_uid="recommendations.impressions_drain")
