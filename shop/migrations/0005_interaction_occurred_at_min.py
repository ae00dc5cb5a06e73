"""Interactions dated before 1990-01-01 UTC (``shop.event_time.EVENTS_EARLIEST``) are
refused by the database (constraint ``interaction_occurred_at_min``).

Existing rows dated earlier are DELETED first, not clamped: such a time (year 1, say)
is garbage from a client or a file, not a real event, and moving it to 1990 would
invent an event at a time it did not happen (and weigh in training's time decay as
the oldest history). They were the rows that broke training, admin pages, the API
and the privacy export. The count deleted is printed while migrating.

The upper bound ("not more than a small skew after now") cannot be a constraint on
PostgreSQL (a CHECK must be immutable); it is checked at the edge only, by
``shop.event_time.occurred_at_problem``.
"""

import datetime

from django.db import migrations, models

EARLIEST = datetime.datetime(1990, 1, 1, 0, 0, tzinfo=datetime.UTC)


def delete_too_early(apps, schema_editor):
    Interaction = apps.get_model("shop", "Interaction")
    deleted, _ = Interaction.objects.using(schema_editor.connection.alias).filter(occurred_at__lt=EARLIEST).delete()
    if deleted:
        print(f"\n  deleted {deleted} interaction(s) dated before {EARLIEST:%Y-%m-%d} UTC")


class Migration(migrations.Migration):
    dependencies = [
        ("shop", "0004_product_stock_untracked"),
    ]

    operations = [
        migrations.RunPython(delete_too_early, migrations.RunPython.noop, elidable=True),
        migrations.AddConstraint(
            model_name="interaction",
            constraint=models.CheckConstraint(
                condition=models.Q(("occurred_at__gte", EARLIEST)),
                name="interaction_occurred_at_min",
            ),
        ),
    ]
