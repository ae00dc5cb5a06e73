"""Signal receivers: the email provider's tracking webhooks (django-anymail) and the
store's "customer forgotten" signal. Thin: hand the event to a service."""

from __future__ import annotations

import logging

from anymail.signals import tracking
from django.db import transaction
from django.db.models.signals import post_save, pre_save
from django.dispatch import receiver

from shop.models import Interaction, Order, Product, User
from shop.signals import ProductChange, interactions_recorded, products_changed, user_forgotten

from . import privacy, social, suppressions, triggers
from .tasks import triggers_react_enqueue

logger = logging.getLogger(__name__)


@receiver(tracking, dispatch_uid="campaigns.esp_tracking")
def on_esp_tracking(sender, event, esp_name, **kwargs) -> None:
    """Bounces and complaints reported by the provider become suppressions."""
    suppressions.esp_event_record(
        event_type=event.event_type,
        recipient=event.recipient,
        metadata=event.metadata or {},
        reject_reason=event.reject_reason,
        description=event.description or "",
        esp_name=esp_name,
        at=event.timestamp,
    )


@receiver(user_forgotten, dispatch_uid="campaigns.user_forgotten")
def on_user_forgotten(sender, user_id: int, **kwargs) -> None:
    privacy.user_forget_campaign_data(user_id=user_id)


@receiver(post_save, sender=Order, dispatch_uid="campaigns.order_placed")
def on_order_placed(sender, instance: Order, created: bool, raw: bool = False, **kwargs) -> None:
    """A new order may come from a shared link: credited once it is committed (its
    lines, and so its revenue, are written in the same transaction). It may also fire
    post-purchase campaigns in real time (`campaigns.triggers`)."""
    if created and not raw and instance.user_id is not None:
        order_id = instance.pk
        # robust: crediting a sharer is bookkeeping; if it fails (logged), the shopper's
        # checkout still answers and the trigger evaluation below is still queued
        transaction.on_commit(lambda: social.order_attribute(order_id=order_id), robust=True)
        triggers_react_enqueue(
            kinds=triggers.KINDS_OF_EVENT["order"], user_ids=[instance.user_id], at=instance.placed_at
        )


# --- store events that fire triggered campaigns in real time (campaigns.triggers) -------------
@receiver(post_save, sender=Interaction, dispatch_uid="campaigns.trigger_interaction")
def on_interaction(sender, instance: Interaction, created: bool, raw: bool = False, **kwargs) -> None:
    """One shopper event (`interaction_record`: a view, a cart add...)."""
    if created and not raw and instance.user_id is not None:
        kinds = triggers.kinds_of_interactions({instance.kind})
        triggers_react_enqueue(kinds=kinds, user_ids=[instance.user_id], at=instance.occurred_at)


@receiver(interactions_recorded, dispatch_uid="campaigns.trigger_interactions")
def on_interactions(sender, user_ids, kinds, **kwargs) -> None:
    """Shopper events in bulk (the API's batch ingestion)."""
    triggers_react_enqueue(kinds=triggers.kinds_of_interactions(kinds), user_ids=user_ids)


@receiver(post_save, sender=User, dispatch_uid="campaigns.trigger_sign_up")
def on_sign_up(sender, instance: User, created: bool, raw: bool = False, **kwargs) -> None:
    if created and not raw:
        triggers_react_enqueue(kinds=triggers.KINDS_OF_EVENT["signup"], user_ids=[instance.pk])


_BEFORE = "_campaigns_price_stock_before"  # set on the instance between pre_save and post_save


@receiver(pre_save, sender=Product, dispatch_uid="campaigns.trigger_product_before")
def on_product_saving(sender, instance: Product, raw: bool = False, update_fields=None, **kwargs) -> None:
    """One product saved (admin, `product_update`): its price and stock before."""
    if raw or instance.pk is None or (update_fields is not None and not {"price", "stock"} & set(update_fields)):
        return
    before = Product.objects.filter(pk=instance.pk).values_list("price", "stock").first()
    if before is not None:
        setattr(instance, _BEFORE, before)


@receiver(post_save, sender=Product, dispatch_uid="campaigns.trigger_product_saved")
def on_product_saved(sender, instance: Product, created: bool, raw: bool = False, **kwargs) -> None:
    before = instance.__dict__.pop(_BEFORE, None)
    if before is None or created or raw:
        return
    price, stock = before
    # the saved instance holds what it was given ("1.65" from a form or a script): the
    # stored value, as the database has it, is what a price drop compares
    after = Product._meta.get_field("price").to_python(instance.price)
    if price != after or stock != instance.stock:
        _product_changes([ProductChange(instance.pk, price, after, stock, instance.stock)])


@receiver(products_changed, dispatch_uid="campaigns.trigger_products_changed")
def on_products_changed(sender, changes, **kwargs) -> None:
    """Products' price or stock changed in bulk (catalogue upserts, orders)."""
    _product_changes(changes)


def _product_changes(changes: list[ProductChange]) -> None:
    fired = triggers.product_changes_record(changes=changes)
    if fired:
        triggers_react_enqueue(kinds=triggers.kinds_of_changes(fired), change_ids=[c.pk for c in fired])
