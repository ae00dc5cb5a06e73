"""Once created the impressions drain's periodic task; periodic tasks are now declared
in one place (shop/schedule.py) and installed after every migrate. Kept as a no-op so
the migration history stays the same."""
from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("recommendations", "0002_serving_state_and_nightly_training"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations: list = []
