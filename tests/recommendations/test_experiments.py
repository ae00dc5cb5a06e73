"""A/B experiments (recommendations.experiments): assignment, starting and stopping,
and the report (with its admin page)."""

from __future__ import annotations

import pytest
from django.urls import reverse

from recommendations import impressions, services
from recommendations.experiments import experiment_report
from recommendations.models import Experiment, ExperimentVariant, Impression
from shop.models import Interaction
from shop.services.orders import OrderLineIn, order_place

pytestmark = pytest.mark.django_db


def test_experiment_assigns_each_shopper_one_variant(store, trained):
    exp = Experiment.objects.create(name="Model vs trending", key="model-vs-trending", context="home")
    ExperimentVariant.objects.create(experiment=exp, name="control", strategy="trending", weight=1)
    ExperimentVariant.objects.create(experiment=exp, name="model", model_version=trained, weight=1)
    services.experiment_start(experiment=exp)
    seen = {}
    for user in store.customers[:30]:
        first = services.recommend_for_user(user=user, n=3)
        again = services.recommend_for_user(user=user, n=3)
        assert first.variant == again.variant
        seen[user.pk] = first.variant
        expected = "trending" if first.variant == "control" else f"model:item_knn#{trained.pk}"
        assert first.strategy == expected
    assert set(seen.values()) == {"control", "model"}
    impressions.drain()
    assert Impression.objects.filter(experiment=exp).count() == 60
    # another context does not take part; an explicit strategy bypasses the experiment
    assert services.recommend_for_user(user=store.customers[0], context="cart").variant == ""
    assert services.recommend_for_user(user=store.customers[0], strategy="trending").variant == ""
    services.experiment_stop(experiment=exp)
    assert services.recommend_for_user(user=store.customers[0]).variant == ""


def test_experiment_needs_two_variants_and_one_per_context(store, trained):
    exp = Experiment.objects.create(name="one", key="one", context="home")
    ExperimentVariant.objects.create(experiment=exp, name="a", strategy="trending")
    with pytest.raises(ValueError, match="at least two variants"):
        services.experiment_start(experiment=exp)
    ExperimentVariant.objects.create(experiment=exp, name="b", strategy="auto")
    services.experiment_start(experiment=exp)
    other = Experiment.objects.create(name="two", key="two", context="home")
    ExperimentVariant.objects.create(experiment=other, name="a", strategy="trending")
    ExperimentVariant.objects.create(experiment=other, name="b", strategy="auto")
    with pytest.raises(ValueError, match="already runs"):
        services.experiment_start(experiment=other)


def test_experiment_report_with_confidence_intervals(staff_client, store, trained):
    exp = Experiment.objects.create(name="Trending vs model", key="t-vs-m", context="home")
    ExperimentVariant.objects.create(experiment=exp, name="control", strategy="trending")
    ExperimentVariant.objects.create(experiment=exp, name="model", model_version=trained)
    services.experiment_start(experiment=exp)
    clicks = 0
    for user in store.customers[:24]:
        rec = services.recommend_for_user(user=user, n=3)
        if rec.variant == "model":  # the model's shoppers click more in this test
            services.click_record(rec_list_id=rec.id, product=rec.picks[0].product, user=user)
            clicks += 1
            order_place(lines=[OrderLineIn(product=rec.picks[0].product, quantity=1, rec_list_id=rec.id)], user=user)
    impressions.drain()  # with Redis the lists are queued first
    rows = {r.name: r for r in experiment_report(experiment=exp)}
    assert rows["model"].ctr.successes == clicks == rows["model"].conversion.successes
    assert rows["model"].ctr.trials + rows["control"].ctr.trials == 24
    assert rows["control"].ctr.value == 0.0
    assert 0 <= rows["model"].ctr.low < rows["model"].ctr.value <= 1.0 == rows["model"].ctr.value
    assert rows["model"].ctr_p_vs_control < 0.05
    assert rows["model"].offline_ndcg == trained.ndcg and rows["model"].revenue > 0
    response = staff_client.get(reverse("admin:recommendations_experiment_report", args=[exp.pk]))
    html = response.content.decode()
    assert response.status_code == 200 and "95% Wilson interval" in html
    assert '<canvas data-chart="chart-ctr"' in html and '<script id="chart-ctr" type="application/json">' in html
    assert '<canvas data-chart="chart-conversion"' in html
    assert "vendor/chartjs/4.6.2/chart.umd.min.js" in html and "admin/js/affinity-charts.js" in html
    ctr = response.context["ctr_chart"]
    assert ctr["labels"] == ["control", "model"]  # in the report's order
    bars, points = ctr["datasets"]
    model = rows["model"].ctr
    assert bars["data"][1] == [model.low, model.high] and points["data"][1] == model.value
    assert bars["tooltips"][1] == f"model: {model.value:.2%} (95% CI {model.low:.2%} – {model.high:.2%})"
    assert f"{trained.ndcg:.4f}" in html
    assert Interaction.objects.filter(kind=Interaction.Kind.CLICK).count() == clicks
