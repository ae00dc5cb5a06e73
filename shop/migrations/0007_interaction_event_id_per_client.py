"""``event_id`` is unique per sending client, not across all clients.

``Interaction.client_id`` (the id of the API account that sent the event) becomes the
namespace of ``event_id``: one shopper can no longer claim ids that another client will
send later (whose events were then dropped as duplicates). Two partial unique
constraints, because NULLs are distinct in a unique index: ``(client_id, event_id)``
for API clients, ``event_id`` alone where client_id is NULL (the store's own events
and the importers', whose derived keys start with ``imp:``), so a re-import still
stores nothing twice. Rows stored before keep client_id NULL: their ids stay in the
shared namespace, unique as before (no row changes; the old index's guarantee holds).
"""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("shop", "0006_cart_order"),
    ]

    operations = [
        migrations.RemoveConstraint(
            model_name="interaction",
            name="interaction_event_id_unique",
        ),
        migrations.AddField(
            model_name="interaction",
            name="client_id",
            field=models.BigIntegerField(blank=True, help_text="Id of the API account that sent the event", null=True),
        ),
        migrations.AlterField(
            model_name="interaction",
            name="event_id",
            field=models.CharField(
                blank=True,
                help_text="Client-chosen idempotency key: an event with a known id (of the same client) is not stored twice.",
                max_length=64,
                null=True,
            ),
        ),
        migrations.AddConstraint(
            model_name="interaction",
            constraint=models.UniqueConstraint(
                condition=models.Q(("client_id__isnull", False), ("event_id__isnull", False)),
                fields=("client_id", "event_id"),
                name="interaction_event_id_client_unique",
            ),
        ),
        migrations.AddConstraint(
            model_name="interaction",
            constraint=models.UniqueConstraint(
                condition=models.Q(("client_id__isnull", True), ("event_id__isnull", False)),
                fields=("event_id",),
                name="interaction_event_id_store_unique",
            ),
        ),
    ]
