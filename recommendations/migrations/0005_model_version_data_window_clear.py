"""Clear the data window of model versions trained on events dated before 1990.

Such an event (year 1, say) was accepted until shop.0005 bounded event times (and
deleted the rows); a model trained meanwhile recorded ``data_since`` (and possibly
``data_until``) in year 1, which then broke every read of it (``GET /api/v1/models``,
admin: converting it to local time overflows). The true window is unknown, so it is
cleared (NULL, "not recorded"), not clamped; the model itself is kept.
"""

import datetime

from django.db import migrations

EARLIEST = datetime.datetime(1990, 1, 1, 0, 0, tzinfo=datetime.UTC)


def clear_bad_windows(apps, schema_editor):
    ModelVersion = apps.get_model("recommendations", "ModelVersion")
    versions = ModelVersion.objects.using(schema_editor.connection.alias)
    versions.filter(data_since__lt=EARLIEST).update(data_since=None)
    versions.filter(data_until__lt=EARLIEST).update(data_until=None)


class Migration(migrations.Migration):
    dependencies = [
        ("recommendations", "0004_model_version_protocol"),
    ]

    operations = [
        migrations.RunPython(clear_bad_windows, migrations.RunPython.noop, elidable=True),
    ]
