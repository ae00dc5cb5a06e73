"""Celery application. Broker: Redis when REDIS_URL is set, else kombu's filesystem
transport under var/ (no server needed, still a real worker process)."""

import os

from celery import Celery
from celery.signals import before_task_publish, import_modules

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "shop.settings")

app = Celery("affinity")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


def broker_folders_ensure() -> None:
    """The filesystem transport needs its folders before the first message."""
    if not str(app.conf.broker_url).startswith("filesystem://"):
        return
    opts = app.conf.broker_transport_options or {}
    for key in ("data_folder_in", "data_folder_out", "processed_folder", "control_folder"):
        if opts.get(key):
            os.makedirs(opts[key], exist_ok=True)


_folders_ready = False


@import_modules.connect
@before_task_publish.connect
def _broker_folders(sender=None, **kwargs) -> None:  # worker/beat start-up, first publish
    global _folders_ready
    if not _folders_ready:
        broker_folders_ensure()
        _folders_ready = True
