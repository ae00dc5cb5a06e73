"""The serving-state row, and the default nightly training schedule that staff
edit in admin (Periodic tasks: "Train recommendation models nightly")."""
import json

from django.conf import settings
from django.db import migrations

TASK_NAME = "Train recommendation models nightly"


def create(apps, schema_editor):
    ServingState = apps.get_model("recommendations", "ServingState")
    ServingState.objects.get_or_create(pk=1, defaults={"epoch": 1})
    CrontabSchedule = apps.get_model("django_celery_beat", "CrontabSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    if PeriodicTask.objects.filter(name=TASK_NAME).exists():
        return
    crontab, _ = CrontabSchedule.objects.get_or_create(
        minute="30", hour="2", day_of_week="*", day_of_month="*", month_of_year="*",
        timezone=settings.TIME_ZONE,
    )
    PeriodicTask.objects.create(
        name=TASK_NAME, task="recommendations.train_scheduled", crontab=crontab,
        kwargs=json.dumps({"algorithm": "auto", "params": {}, "slot": "default"}),
        description="Trains a new model version every night at 02:30; it replaces the active one only if it "
                    "scores a better NDCG@10 on the temporal holdout. Edit the time or the kwargs here.",
        enabled=True,
    )


def remove(apps, schema_editor):
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    PeriodicTask.objects.filter(name=TASK_NAME).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("recommendations", "0001_initial"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(create, remove)]
