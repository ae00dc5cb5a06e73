from django.apps import AppConfig
from django.db.models.signals import post_migrate


def _periodic_tasks_install(sender, using, **kwargs) -> None:
    from .schedule import periodic_tasks_install  # noqa: PLC0415 - needs the app registry ready

    periodic_tasks_install()


class ShopConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "shop"
    verbose_name = "Store"

    def ready(self) -> None:
        from . import receivers  # noqa: F401, PLC0415 - connects the signal receivers

        # The periodic tasks declared in shop/schedule.py exist after every migrate.
        post_migrate.connect(_periodic_tasks_install, sender=self, dispatch_uid="shop.periodic_tasks_install")
