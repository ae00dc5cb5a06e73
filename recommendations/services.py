"""The recommendations app's services: serving (the contract the store, campaigns
and the API code against), training and activation, impressions and clicks,
experiments, privacy.

Serving is implemented in ``serving.py``, training in ``training.py``, forgetting
in ``privacy.py``; this module is the one place other code imports from.
"""

from __future__ import annotations

import uuid

from django.db import transaction

from shop import services as shop_services
from shop.models import Interaction, Product, User

from . import impressions, state
from .models import Experiment, ExperimentVariant
from .privacy import user_data_forget
from .serving import (
    CONTEXTS,
    Pick,
    RecommendationList,
    ShopperNotFound,
    recommend_for_user,
    recommend_for_users_batch,
    similar_products,
    strategy_check,
    trending_products,
    variant_for,
)
from .training import (
    TrainingError,
    artifacts_prune,
    model_train,
    model_train_enqueue,
    model_version_activate,
    model_version_create,
    model_version_deactivate,
    model_version_delete,
    model_version_promote,
)

__all__ = [
    "CONTEXTS",
    "Pick",
    "RecommendationList",
    "ShopperNotFound",
    "TrainingError",
    "artifacts_prune",
    "click_record",
    "experiment_start",
    "experiment_stop",
    "model_train",
    "model_train_enqueue",
    "model_version_activate",
    "model_version_create",
    "model_version_deactivate",
    "model_version_delete",
    "model_version_promote",
    "recommend_for_user",
    "recommend_for_users_batch",
    "similar_products",
    "strategy_check",
    "trending_products",
    "user_data_forget",
    "variant_for",
]


def click_record(
    *,
    rec_list_id: uuid.UUID | str,
    product: Product,
    user: User | None = None,
    session_key: str = "",
    source: int = Interaction.Source.WEB,
) -> Interaction:
    """Record a click on a recommended product (an ``Interaction`` of kind CLICK with
    the list's id, through ``shop.services``). Raises ``ValueError`` when the list
    is unknown or did not show that product."""
    try:
        list_id = uuid.UUID(str(rec_list_id))
    except ValueError:
        raise ValueError(f"rec_list_id is not a UUID: {rec_list_id!r}") from None
    shown = impressions.shown_products(list_id)
    if shown is None:
        raise ValueError(f"unknown recommendation list {list_id}")
    if product.pk not in shown:
        raise ValueError(f"product {product.pk} was not in recommendation list {list_id}")
    return shop_services.interaction_record(
        product=product,
        kind=Interaction.Kind.CLICK,
        user=user,
        session_key=session_key,
        source=source,
        rec_list_id=list_id,
    )


def experiment_start(*, experiment: Experiment) -> Experiment:
    """Start an experiment (it needs at least two variants; one per context runs)."""
    from django.utils import timezone

    variants = list(experiment.variants.all())
    if len(variants) < 2:
        raise ValueError(f"experiment {experiment.key!r} needs at least two variants, has {len(variants)}")
    for v in variants:
        if v.model_version is None:
            strategy_check(v.strategy or "auto")
        elif v.model_version.status != "succeeded" or v.model_version.tainted_at is not None:
            raise ValueError(f"variant {v.name!r}: model version {v.model_version.label} cannot serve")
    with transaction.atomic():
        clash = Experiment.objects.filter(is_active=True, context=experiment.context).exclude(pk=experiment.pk).first()
        if clash is not None:
            raise ValueError(f"experiment {clash.key!r} already runs for context {experiment.context or 'all'!r}")
        Experiment.objects.filter(pk=experiment.pk).update(
            is_active=True, started_at=experiment.started_at or timezone.now(), ended_at=None
        )
        state.epoch_bump()
    experiment.refresh_from_db()
    return experiment


def experiment_stop(*, experiment: Experiment) -> Experiment:
    from django.utils import timezone

    with transaction.atomic():
        Experiment.objects.filter(pk=experiment.pk, is_active=True).update(is_active=False, ended_at=timezone.now())
        state.epoch_bump()
    experiment.refresh_from_db()
    return experiment


def variant_clean(*, variant: ExperimentVariant) -> None:
    """Validate a variant's strategy (``ValueError`` naming it)."""
    if variant.model_version_id is None:
        strategy_check(variant.strategy or "auto")
