"""A/B experiments of recommendation strategies on the site.

* ``experiment_assign`` / ``variant_for``: which variant a shopper sees in a context —
  a hash of the experiment key and the user id (or session key), so a shopper keeps
  their variant for the experiment's life;
* ``experiment_start`` / ``experiment_stop``: one running experiment per context, at
  least two variants, each able to serve;
* ``experiment_report``: click-through and conversion per variant with Wilson
  intervals and p-values against the control (``engine.statistics``), attributed
  revenue, and the offline metrics of the model version serving each.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from django.db import transaction
from django.db.models import Count, DecimalField, ExpressionWrapper, F, Sum
from django.utils import timezone

from shop.models import Interaction, OrderLine, User

from . import model_cache
from .engine.statistics import Rate, rate_wilson, two_proportion_p
from .model_cache import ExperimentInfo, Snapshot, VariantInfo
from .models import Experiment, Impression, ModelVersion
from .strategies import strategy_check, version_for


# --- assignment -----------------------------------------------------------------------------
def user_id_of(user: User | None) -> int | None:
    """The id of a signed-in customer, None for an anonymous visitor."""
    if user is None or not getattr(user, "is_authenticated", False):
        return None
    return user.pk


def experiment_assign(
    snap: Snapshot, context: str, user_id: int | None, session_key: str
) -> tuple[ExperimentInfo | None, VariantInfo | None]:
    """(experiment, variant) of a shopper, deterministic per shopper and experiment."""
    ident = f"u{user_id}" if user_id is not None else (f"s{session_key}" if session_key else "")
    if not ident:
        return None, None
    for exp in snap.experiments:
        if exp.context in ("", context):
            digest = hashlib.sha256(f"{exp.key}:{ident}".encode()).digest()
            bucket = int.from_bytes(digest[:8], "big") % exp.total_weight
            for variant in exp.variants:
                if bucket < variant.weight:
                    return exp, variant
                bucket -= variant.weight
    return None, None


def variant_for(*, context: str, user: User | None = None, session_key: str = "") -> tuple[str, str]:
    """(experiment key, variant name) a shopper is assigned to in ``context`` ("" if none)."""
    exp, variant = experiment_assign(model_cache.snapshot(), context, user_id_of(user), session_key)
    return (exp.key, variant.name) if exp else ("", "")


# --- running ----------------------------------------------------------------------------------
def experiment_start(*, experiment: Experiment) -> Experiment:
    """Start an experiment (it needs at least two variants; one per context runs)."""
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
        model_cache.epoch_bump()
    experiment.refresh_from_db()
    return experiment


def experiment_variants_changed(*, experiment: Experiment) -> None:
    """Staff changed the variants of an experiment: a running one is served anew."""
    if experiment.is_active:
        with transaction.atomic():
            model_cache.epoch_bump()


def experiment_stop(*, experiment: Experiment) -> Experiment:
    with transaction.atomic():
        Experiment.objects.filter(pk=experiment.pk, is_active=True).update(is_active=False, ended_at=timezone.now())
        model_cache.epoch_bump()
    experiment.refresh_from_db()
    return experiment


# --- the report ---------------------------------------------------------------------------
@dataclass
class VariantReport:
    name: str
    served_by: str
    weight: int
    lists: int
    ctr: Rate
    conversion: Rate
    revenue: float
    ctr_p_vs_control: float | None = None
    conversion_p_vs_control: float | None = None
    offline: dict | None = None
    offline_version: str = ""

    @property
    def offline_ndcg(self) -> float | None:
        return (self.offline or {}).get("ndcg@10")

    @property
    def offline_precision(self) -> float | None:
        return (self.offline or {}).get("precision@10")

    @property
    def offline_recall(self) -> float | None:
        return (self.offline or {}).get("recall@10")


def experiment_report(*, experiment) -> list[VariantReport]:
    """Per variant: lists shown, click-through (lists with at least one click, Wilson
    95% CI), conversion (lists with an attributed order line), attributed revenue,
    p-values against the first variant (control), and the offline metrics of the
    model version serving it. A constant number of queries."""
    lists_qs = Impression.objects.filter(experiment=experiment)
    shown = dict(lists_qs.values("variant").annotate(n=Count("id")).values_list("variant", "n"))
    clicked_ids = Interaction.objects.filter(kind=Interaction.Kind.CLICK, rec_list_id__isnull=False).values(
        "rec_list_id"
    )
    clicked = dict(
        lists_qs.filter(id__in=clicked_ids).values("variant").annotate(n=Count("id")).values_list("variant", "n")
    )
    ordered_ids = OrderLine.objects.filter(rec_list_id__isnull=False).values("rec_list_id")
    converted = dict(
        lists_qs.filter(id__in=ordered_ids).values("variant").annotate(n=Count("id")).values_list("variant", "n")
    )
    revenue_by_list = (
        OrderLine.objects.filter(rec_list_id__in=lists_qs.values("id"))
        .values("rec_list_id")
        .annotate(amount=Sum(ExpressionWrapper(F("unit_price") * F("quantity"), output_field=DecimalField())))
    )
    variant_of = dict(lists_qs.filter(id__in=ordered_ids).values_list("id", "variant"))
    revenue: dict[str, float] = {}
    for row in revenue_by_list:
        name = variant_of.get(row["rec_list_id"])
        if name is not None:
            revenue[name] = revenue.get(name, 0.0) + float(row["amount"] or 0)
    snap = model_cache.snapshot()
    out: list[VariantReport] = []
    for v in experiment.variants.select_related("model_version").all():
        n = shown.get(v.name, 0)
        version = v.model_version
        if version is None:
            try:
                info = version_for(snap, strategy_check(v.strategy or "auto"))
            except ValueError:
                info = None
            version = ModelVersion.objects.filter(pk=info.id).first() if info else None
        out.append(
            VariantReport(
                name=v.name,
                served_by=(
                    version.label
                    if v.model_version
                    else f"{v.strategy or 'auto'}" + (f" → {version.label}" if version else "")
                ),
                weight=v.weight,
                lists=n,
                ctr=rate_wilson(clicked.get(v.name, 0), n),
                conversion=rate_wilson(converted.get(v.name, 0), n),
                revenue=round(revenue.get(v.name, 0.0), 2),
                offline={
                    k: val
                    for k, val in (version.metrics or {}).items()
                    if k in ("ndcg@10", "precision@10", "recall@10", "map@10")
                }
                if version
                else None,
                offline_version=version.label if version else "",
            )
        )
    if out:
        control = out[0]
        for r in out[1:]:
            r.ctr_p_vs_control = two_proportion_p(r.ctr, control.ctr)
            r.conversion_p_vs_control = two_proportion_p(r.conversion, control.conversion)
    return out
