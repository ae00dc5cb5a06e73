from django.apps import AppConfig


class StorefrontConfig(AppConfig):
    name = "storefront"
    verbose_name = "Storefront"

    def ready(self) -> None:
        from . import receivers  # noqa: F401, PLC0415 - connects the login receiver
