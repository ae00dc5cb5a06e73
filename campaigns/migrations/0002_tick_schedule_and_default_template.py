"""A default email template so staff can send a first campaign without writing one.
(This migration once also created the campaigns tick's periodic task; periodic tasks
are now declared in one place, shop/schedule.py, and installed after every migrate.)"""
from pathlib import Path

from django.db import migrations

TEMPLATE_NAME = "Recommended for you"
EMAILS = Path(__file__).resolve().parents[2] / "templates" / "campaigns" / "emails"


def create(apps, schema_editor):
    EmailTemplate = apps.get_model("campaigns", "EmailTemplate")
    html, text = EMAILS / "recommendations.html", EMAILS / "recommendations.txt"
    if html.exists() and text.exists() and not EmailTemplate.objects.filter(name=TEMPLATE_NAME).exists():
        EmailTemplate.objects.create(
            name=TEMPLATE_NAME, subject="{{ greeting_name }}, we picked these for you",
            html_body=html.read_text(encoding="utf-8"), text_body=text.read_text(encoding="utf-8"),
        )


def remove(apps, schema_editor):
    EmailTemplate = apps.get_model("campaigns", "EmailTemplate")
    EmailTemplate.objects.filter(name=TEMPLATE_NAME, campaigns__isnull=True).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("campaigns", "0001_initial"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(create, remove)]
