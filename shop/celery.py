"""Celery application. Broker: Redis when REDIS_URL is set, else a filesystem broker
under var/ (no server needed, still a real worker process)."""
import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "shop.settings")

app = Celery("affinity")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
