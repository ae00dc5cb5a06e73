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

from . import impressions, privacy, trending
from .experiments import experiment_start, experiment_stop, experiment_variants_changed, variant_for
from .models import ForgottenUser, ModelVersion, PredictionRun
from .placements import PlacementNotFound, placement_preview, placement_serve, placements_all
from .predictions import PredictionError, customer_prediction, prediction_run_create
from .rules import RuleError, request_rules
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
from .tasks import customer_predictions_task, model_train_task
from .training import model_train
from .trends import WINDOW_HOURS as TRENDS_WINDOW_HOURS
from .trends import (
    LikelyBuyers,
    TrendsError,
    likely_buyer_ids,
    likely_buyers,
    likely_buyers_many,
    new_products,
    trends_board,
)
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
    "PredictionError",
    "customer_prediction",
    "prediction_run_create",
    "predictions_compute_enqueue",
    "Pick",
    "PlacementNotFound",
    "RuleError",
    "RecommendationList",
    "ShopperNotFound",
    "TrainingError",
    "LikelyBuyers",
    "TRENDS_WINDOW_HOURS",
    "TrendsError",
    "likely_buyer_ids",
    "likely_buyers",
    "likely_buyers_many",
    "new_products",
    "trends_board",
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
    "placement_preview",
    "placement_serve",
    "placements_all",
    "recommend_for_user",
    "recommend_for_users_batch",
    "recommend_for_users_batches",
    "request_rules",
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


def predictions_compute_enqueue(*, run: PredictionRun) -> None:
    """Send a customer-prediction run to a worker once the current transaction commits
    (the task id is recorded on the run)."""

    def send(run_id: int = run.pk) -> None:
        result = customer_predictions_task.delay(run_id)
        PredictionRun.objects.filter(pk=run_id, task_id="").update(task_id=result.id or "")

    transaction.on_commit(send)


def user_data_forget(*, user_id: int) -> ForgottenUser:
    """Drop everything derived from a customer (``privacy.user_data_forget``) and
    queue the retraining it asks for once the transaction commits."""
    record = privacy.user_data_forget(user_id=user_id)
    trending.trending_forget()  # not served from the last list: their events leave trending now
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
