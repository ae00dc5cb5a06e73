"""The scheduler's entry for the campaigns tick (django-celery-beat), and a default
email template so staff can send a first campaign without writing one."""
from pathlib import Path

from django.db import migrations

TASK_NAME = "campaigns: launch due campaigns, evaluate triggers, attribute orders"
TEMPLATE_NAME = "Recommended for you"
EMAILS = Path(__file__).resolve().parents[2] / "templates" / "campaigns" / "emails"


def create(apps, schema_editor):
    IntervalSchedule = apps.get_model("django_celery_beat", "IntervalSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    if not PeriodicTask.objects.filter(name=TASK_NAME).exists():
        every, _ = IntervalSchedule.objects.get_or_create(every=2, period="minutes")
        PeriodicTask.objects.create(
            name=TASK_NAME, task="campaigns.tick", interval=every, enabled=True,
            description="Every 2 minutes: launch scheduled campaigns, evaluate triggered flows, "
                        "pick up stalled sending, complete campaigns, attribute orders to email clicks.",
        )
    EmailTemplate = apps.get_model("campaigns", "EmailTemplate")
    html, text = EMAILS / "recommendations.html", EMAILS / "recommendations.txt"
    if html.exists() and text.exists() and not EmailTemplate.objects.filter(name=TEMPLATE_NAME).exists():
        EmailTemplate.objects.create(
            name=TEMPLATE_NAME, subject="{{ greeting_name }}, we picked these for you",
            html_body=html.read_text(encoding="utf-8"), text_body=text.read_text(encoding="utf-8"),
        )


def remove(apps, schema_editor):
    apps.get_model("django_celery_beat", "PeriodicTask").objects.filter(name=TASK_NAME).delete()
    EmailTemplate = apps.get_model("campaigns", "EmailTemplate")
    EmailTemplate.objects.filter(name=TEMPLATE_NAME, campaigns__isnull=True).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("campaigns", "0001_initial"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(create, remove)]
