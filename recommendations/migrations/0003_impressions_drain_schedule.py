"""The periodic drain of queued impressions (``recommendations.impressions``): every
5 seconds from Celery beat, editable in admin (Periodic tasks)."""
from django.db import migrations

TASK_NAME = "Write queued recommendation impressions"


def create(apps, schema_editor):
    IntervalSchedule = apps.get_model("django_celery_beat", "IntervalSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    if PeriodicTask.objects.filter(name=TASK_NAME).exists():
        return
    every, _ = IntervalSchedule.objects.get_or_create(every=5, period="seconds")
    PeriodicTask.objects.create(
        name=TASK_NAME, task="recommendations.impressions_drain", interval=every, enabled=True,
        description="Moves the recommendation lists shown (queued in Redis by the web processes) into the "
                    "database in batches. Without Redis it has nothing to do.",
    )


def remove(apps, schema_editor):
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    PeriodicTask.objects.filter(name=TASK_NAME).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("recommendations", "0002_serving_state_and_nightly_training"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(create, remove)]
