"""``manage.py train`` with no arguments on every shape of a store's own data (issue 12):
explicit ratings only, purchases only, view-heavy events, one kind, timestamps years
in the past, a tiny store, no catalogue. Each time: no crash, a personalised model,
and on customers' held-out products (a random 20%, never seen by training) it beats
popularity clearly. The stores come from ``bench/shapes.py`` (real latent tastes)."""

from __future__ import annotations

import collections
import csv
import io

import numpy as np
import pytest
from django.core.management import call_command

from bench import shapes
from recommendations.engine.evaluation import ndcg_at_k, random_stratified_split
from recommendations.models import ModelVersion

pytestmark = pytest.mark.django_db

PERSONAL = {"ease", "als", "item_knn", "item_knn_bm25", "svd", "bpr", "hybrid"}


def _split(rows):
    pairs = sorted({(r[0], r[1]) for r in rows})
    split = random_stratified_split(np.array([u for u, _ in pairs]), test_fraction=0.2, seed=5)
    held = {pair for pair, out in zip(pairs, split.test) if out}
    train = [r for r in rows if (r[0], r[1]) not in held]
    known = {r[1] for r in train}
    test = collections.defaultdict(set)
    for r in rows:
        if (r[0], r[1]) in held and r[1] in known and (r[4] != "rating" or r[2] >= 4):
            test[r[0]].add(r[1])
    return train, dict(test)


def _ndcg(lists: dict[str, list[str]], test: dict[str, set[str]]) -> float:
    users = sorted(test)
    universe = {s: i for i, s in enumerate(sorted({s for u in users for s in test[u] | set(lists.get(u, []))}))}
    recommended = np.full((len(users), 10), -1)
    for row, user in enumerate(users):
        picks = [universe[s] for s in lists.get(user, [])[:10]]
        recommended[row, : len(picks)] = picks
    return float(ndcg_at_k(recommended, [{universe[s] for s in test[u]} for u in users], 10))


@pytest.mark.parametrize(
    ("shape", "scale", "protocol"),
    [
        ("ratings", 0.3, "random-per-user"),  # explicit ratings only, years ago, no names or categories
        ("purchases", 0.25, "temporal"),
        ("views", 0.4, "temporal"),  # products come back over several visits
        ("single", 0.25, "temporal"),
        ("tiny", 1.0, "temporal"),
    ],
)
def test_train_with_no_arguments_picks_a_personal_model_on_every_shape(shape, scale, protocol, tmp_path, settings):
    settings.AFFINITY_TRAIN_SELECTION_BUDGET_S = 20
    train_rows, test = _split(shapes.events(shape, seed=3, scale=scale))
    path = shapes.events_write(tmp_path / "events.csv", train_rows)
    call_command(
        "import_interactions", str(path), "--map", "user=customer,item=product", "--no-progress", stdout=io.StringIO()
    )

    out = io.StringIO()
    call_command("train", stdout=out, stderr=io.StringIO())

    version = ModelVersion.objects.get()
    assert version.status == ModelVersion.Status.SUCCEEDED
    assert version.algorithm in PERSONAL, out.getvalue()
    assert version.metrics["protocol"] == protocol, version.metrics["protocol_reason"]
    assert version.metrics["protocol_reason"] and "holdout: " in out.getvalue()
    rows = {row["algorithm"]: row for row in version.metrics["selection"]}
    assert rows["content"]["status"] == "skipped" and "no product names or categories" in rows["content"]["reason"]

    recs = tmp_path / "recs.csv"
    call_command("recommend", "--all", "--n", "30", "--out", str(recs), stderr=io.StringIO(), stdout=io.StringIO())
    seen = collections.defaultdict(set)
    for r in train_rows:
        seen[r[0]].add(r[1])
    lists = collections.defaultdict(list)  # held-out pairs are new pairs: what the customer had is no answer
    with open(recs, newline="") as handle:
        for row in csv.DictReader(handle):
            if row["sku"] not in seen[row["user"]]:
                lists[row["user"]].append(row["sku"])
    ranked = [s for s, _ in collections.Counter(r[1] for r in train_rows).most_common()]
    popular = {u: [s for s in ranked if s not in seen[u]][:10] for u in test}
    model, baseline = _ndcg(lists, test), _ndcg(popular, test)
    assert model > 1.15 * baseline, (model, baseline, out.getvalue())


def test_explicit_ratings_with_the_temporal_protocol_forced(tmp_path):
    rows = shapes.events("ratings", seed=4, scale=0.1)
    path = shapes.events_write(tmp_path / "events.csv", rows)
    call_command(
        "import_interactions", str(path), "--map", "user=customer,item=product", "--no-progress", stdout=io.StringIO()
    )
    out = io.StringIO()
    call_command("train", "--protocol", "temporal", "--algorithm", "hybrid", stdout=out, stderr=io.StringIO())
    version = ModelVersion.objects.get()
    assert version.status == ModelVersion.Status.SUCCEEDED
    assert version.protocol == "temporal" and version.metrics["protocol"] == "temporal"
    assert "asked for" in version.metrics["protocol_reason"]
    assert "holdout: temporal" in out.getvalue()
