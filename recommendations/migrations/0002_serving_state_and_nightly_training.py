"""The serving-state row. (This migration once also created the nightly training
schedule; periodic tasks are now declared in one place, shop/schedule.py, and installed
after every migrate.)"""
from django.db import migrations


def create(apps, schema_editor):
    ServingState = apps.get_model("recommendations", "ServingState")
    ServingState.objects.get_or_create(pk=1, defaults={"epoch": 1})


class Migration(migrations.Migration):
    dependencies = [
        ("recommendations", "0001_initial"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(create, migrations.RunPython.noop)]
