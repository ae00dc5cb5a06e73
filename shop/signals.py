"""Signals the store sends; other apps listen (shop never imports them)."""

from dataclasses import dataclass
from decimal import Decimal

from django.dispatch import Signal

# Sent inside the transaction that deletes a customer, before the row goes:
# kwargs ``user_id``. Listeners must drop anything derived from that customer.
user_forgotten = Signal()

# Sent inside the transaction that recorded shoppers' events in bulk (the API's batch
# ingestion; one event through `interaction_record` is a plain post_save of Interaction),
# not by the importers of history: kwargs ``user_ids`` (the customers among them, a set)
# and ``kinds`` (the event kinds, a set of Interaction.Kind values).
interactions_recorded = Signal()

# Sent inside the transaction that changed products' price or stock in bulk (catalogue
# upserts, orders taking stock): kwargs ``changes``, a list of `ProductChange`. One
# product's ``save()`` (admin, `product_update`) is a plain pre_save/post_save instead.
products_changed = Signal()


@dataclass(frozen=True)
class ProductChange:
    product_id: int
    price_before: Decimal | None
    price_after: Decimal | None
    stock_before: int | None
    stock_after: int | None


# Sent once by a web process (`shop.warmup.warm`, from shop.wsgi) after it has loaded the
# application and before it serves: receivers load what the first request would otherwise
# wait for (the active models, their lists). No kwargs; a receiver's failure is logged.
serving_started = Signal()
