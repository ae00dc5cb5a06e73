"""The recommendations app's services: serving (the contract the store, campaigns
and the API code against), training and the model versions, impressions and
clicks, experiments, privacy.

Serving is implemented in ``serving.py``, training in ``training.py``, the version
lifecycle in ``versions.py``, experiments in ``experiments.py``, forgetting in
``privacy.py``; this module is the one place other code imports from, and the one
that enqueues background work (``tasks``) once the transaction commits.
"""

from __future__ import annotations

import uuid

from django.db import transaction

from shop.models import Interaction, Product, User
from shop.services.interactions import interaction_record

from . import impressions, privacy
from .experiments import experiment_start, experiment_stop, experiment_variants_changed, variant_for
from .models import ForgottenUser, ModelVersion
from .serving import (
    CONTEXTS,
    Pick,
    RecommendationList,
    ShopperNotFound,
    recommend_for_user,
    recommend_for_users_batch,
    recommend_for_users_batches,
    similar_products,
    trending_products,
)
from .strategies import strategy_check
from .tasks import model_train_task
from .training import model_train
from .versions import (
    TrainingError,
    artifacts_prune,
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
    "experiment_variants_changed",
    "model_train",
    "model_train_enqueue",
    "model_version_activate",
    "model_version_create",
    "model_version_deactivate",
    "model_version_delete",
    "model_version_promote",
    "recommend_for_user",
    "recommend_for_users_batch",
    "recommend_for_users_batches",
    "similar_products",
    "strategy_check",
    "trending_products",
    "user_data_forget",
    "variant_for",
]


def model_train_enqueue(*, version: ModelVersion) -> None:
    """Send the run to a worker once the current transaction commits (the task id
    is recorded on the version)."""

    def send(version_id: int = version.pk) -> None:
        result = model_train_task.delay(version_id)
        ModelVersion.objects.filter(pk=version_id, task_id="").update(task_id=result.id or "")

    transaction.on_commit(send)


def user_data_forget(*, user_id: int) -> ForgottenUser:
    """Drop everything derived from a customer (``privacy.user_data_forget``) and
    queue the retraining it asks for once the transaction commits."""
    record = privacy.user_data_forget(user_id=user_id)
    if record.retrain_version is not None:
        model_train_enqueue(version=record.retrain_version)
    return record


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
    return interaction_record(
        product=product,
        kind=Interaction.Kind.CLICK,
        user=user,
        session_key=session_key,
        source=source,
        rec_list_id=list_id,
    )
