"""Affinity: the Django project package and the store's domain."""

from .celery import app as celery_app

__all__ = ("celery_app",)
