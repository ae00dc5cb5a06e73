"""Interactions dated on or after 2100-01-01 UTC (``shop.event_time.EVENTS_IMPOSSIBLE``)
are refused by the database (constraint ``interaction_occurred_at_max``).

Existing rows dated that late are DELETED first, as migration 0005 did for the early
ones: no real event has such a time, and a year-9999 time overflows when a reader
converts it to local time. The count deleted is printed while migrating.
"""

import datetime

from django.db import migrations, models

IMPOSSIBLE = datetime.datetime(2100, 1, 1, 0, 0, tzinfo=datetime.UTC)


def delete_impossible(apps, schema_editor):
    Interaction = apps.get_model("shop", "Interaction")
    rows = Interaction.objects.using(schema_editor.connection.alias).filter(occurred_at__gte=IMPOSSIBLE)
    deleted, _ = rows.delete()
    if deleted:
        print(f"\n  deleted {deleted} interaction(s) dated on or after {IMPOSSIBLE:%Y-%m-%d} UTC")


class Migration(migrations.Migration):
    dependencies = [
        ("shop", "0007_interaction_event_id_per_client"),
    ]

    operations = [
        migrations.RunPython(delete_impossible, migrations.RunPython.noop, elidable=True),
        migrations.AddConstraint(
            model_name="interaction",
            constraint=models.CheckConstraint(
                condition=models.Q(("occurred_at__lt", IMPOSSIBLE)),
                name="interaction_occurred_at_max",
            ),
        ),
    ]
