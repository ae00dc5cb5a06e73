"""Forgetting a customer (GDPR erasure) on the recommendations side.

``shop.services.user_forget`` sends ``shop.signals.user_forgotten`` inside its
transaction, before the customer's rows are deleted. ``user_data_forget`` then, in
that same transaction:

* deletes the lists shown to them (``Impression`` rows), and — once it commits —
  the lists still queued for the database (``impressions.forget_user``);
* retires every model version whose training window covers any of their events
  (marked tainted, deactivated, artifact deleted after commit): such a version
  never serves or gets activated again;
* re-activates, per slot that lost its active version, the newest clean version
  (trained before their first event) if one exists — otherwise the slot serves
  the fallbacks, which read live data only;
* records a ``ForgottenUser`` row (the bare id): a training run that read the
  data before this moment is tainted when it finishes instead of being activated;
* creates a retraining of the retired slot's algorithm (``AFFINITY_RETRAIN_ON_FORGET``),
  which ``services.user_data_forget`` queues once the transaction commits;
* bumps the serving epoch, so every serving process drops the retired models and
  the trending lists (recomputed without their events) on its next call.

What this guarantees from the commit on: no list is computed from a model that
learned from them, nor from their events (history reads and trending are live).
Not covered: files exported before (``manage.py recommend --out``) and e-mails
already sent.
"""

from __future__ import annotations

import logging

from django.db import transaction
from django.db.models import Max, Min
from django.utils import timezone

from shop.models import Interaction

from . import conf, impressions, model_cache, versions
from .models import ForgottenUser, Impression, ModelVersion

logger = logging.getLogger(__name__)


def user_data_forget(*, user_id: int) -> ForgottenUser:
    """Drop everything derived from a customer (see the module docstring)."""
    with transaction.atomic():
        span = Interaction.objects.filter(user_id=user_id).aggregate(first=Min("occurred_at"), last=Max("occurred_at"))
        Impression.objects.filter(user_id=user_id).delete()
        # lists still queued for the database: dropped once this commits
        transaction.on_commit(lambda: impressions.forget_user(user_id))
        retired: list[int] = []
        lost_slots: dict[str, ModelVersion] = {}
        if span["first"] is not None:
            for version in versions.versions_with_user_data(first=span["first"], last=span["last"]).select_for_update():
                if version.is_active:
                    lost_slots[version.slot] = version
                versions.model_version_retire(version=version, reason=f"holds data of forgotten customer {user_id}")
                retired.append(version.pk)
        retrain = None
        for slot, old in lost_slots.items():
            versions.model_version_reactivate_clean(
                slot=slot, note=f"re-activated: {old.label} was retired (forgotten customer)"
            )
            if (
                conf.get("RETRAIN_ON_FORGET")
                and not ModelVersion.objects.filter(slot=slot, status=ModelVersion.Status.QUEUED).exists()
            ):
                retrain = versions.model_version_create(
                    algorithm=old.requested_algorithm or old.algorithm,
                    params=old.params if (old.requested_algorithm or old.algorithm) == old.algorithm else {},
                    slot=slot,
                    trigger=ModelVersion.Trigger.PRIVACY,
                )
        record = ForgottenUser.objects.create(
            user_id=user_id,
            forgotten_at=timezone.now(),
            had_interactions=span["first"] is not None,
            retired_versions=retired,
            retrain_version=retrain,
        )
        model_cache.epoch_bump()
    if retired:
        logger.info("forgotten user %s: retired model versions %s", user_id, retired)
    return record
