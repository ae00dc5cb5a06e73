"""Writes of the storefront pages that span apps (the store's own writes are
`shop.services`, the recommender's `recommendations.services`)."""

from __future__ import annotations

import logging
import uuid

from recommendations import services as recommendations
from shop import selectors
from shop.models import Interaction, Product, User
from shop.services.interactions import interaction_record

logger = logging.getLogger(__name__)


def _click_recorded(*, rec_list_id: uuid.UUID, product: Product, user: User | None, session_key: str) -> bool:
    """Record the click on a recommended product (once per list, product and shopper:
    a reload is not a second click). False if the list did not show the product."""
    if selectors.click_exists(rec_list_id=rec_list_id, product=product, user=user, session_key=session_key):
        return True
    try:
        recommendations.click_record(
            rec_list_id=rec_list_id,
            product=product,
            source=Interaction.Source.WEB,
            user=user,
            session_key=session_key,
        )
    except ValueError as exc:  # an unknown list, or one that did not show this product
        logger.info("click not recorded: %s", exc)
        return False
    except Exception:  # noqa: BLE001 - an event must never break the page
        logger.exception("could not record the click on product %s from list %s", product.pk, rec_list_id)
        return False
    return True


def product_page_visit(
    *,
    product: Product,
    user: User | None,
    session_key: str,
    rec_list_id: uuid.UUID | None = None,
) -> uuid.UUID | None:
    """Record a shopper's visit of a product page: the click on the recommendation that
    led there (``rec_list_id``; only if that list showed the product) and the view,
    attributed to the list when the click counts. Returns the list the visit is
    attributed to, or None. Never raises: a failure is logged, the page matters more.
    """
    if rec_list_id is not None and not _click_recorded(
        rec_list_id=rec_list_id, product=product, user=user, session_key=session_key
    ):
        rec_list_id = None  # not a list that showed this product: no attribution
    try:
        interaction_record(
            product=product,
            kind=Interaction.Kind.VIEW,
            rec_list_id=rec_list_id,
            source=Interaction.Source.WEB,
            user=user,
            session_key=session_key,
        )
    except Exception:  # noqa: BLE001 - an event must never break the page
        logger.exception("could not record %s of product %s", Interaction.Kind.VIEW.label, product.pk)
    return rec_list_id
