from django.apps import AppConfig


class RecommendationsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "recommendations"
    verbose_name = "Recommendations"

    def ready(self) -> None:
        from shop.signals import user_forgotten

        from .privacy import on_user_forgotten

        user_forgotten.connect(on_user_forgotten, dispatch_uid="recommendations.user_forgotten")
