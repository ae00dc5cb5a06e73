"""``Cart.order``: the order a cart last became, so checkout is idempotent per cart
(a repeated or concurrent submit gets that order; see shop.services.carts.cart_checkout).
Existing carts start with none."""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("shop", "0005_interaction_occurred_at_min"),
    ]

    operations = [
        migrations.AddField(
            model_name="cart",
            name="order",
            field=models.OneToOneField(
                blank=True,
                editable=False,
                null=True,
                on_delete=django.db.models.deletion.SET_NULL,
                related_name="+",
                to="shop.order",
            ),
        ),
    ]
