"""Admin: model versions (chart, train, actions, live progress) and experiment reports."""

from __future__ import annotations

import pytest
from django.urls import reverse

from recommendations import services
from recommendations.models import Experiment, ExperimentVariant, ModelVersion
from shop import services as shop_services
from shop.models import Interaction

pytestmark = pytest.mark.django_db


def test_changelist_shows_metrics_chart_and_train_button(staff_client, store, trained):
    response = staff_client.get(reverse("admin:recommendations_modelversion_changelist"))
    html = response.content.decode()
    assert response.status_code == 200
    assert "<svg" in html and "NDCG@10 on the temporal holdout" in html and "item_knn" in html
    assert f"{trained.ndcg:.4f}" in html
    assert reverse("admin:recommendations_modelversion_train") in html
    assert "recommendations/admin_progress.js" in html
    detail = staff_client.get(reverse("admin:recommendations_modelversion_change", args=[trained.pk]))
    assert detail.status_code == 200 and "ndcg@10" in detail.content.decode()


def test_train_view_queues_a_run(staff_client, store, monkeypatch, django_capture_on_commit_callbacks):
    queued = []
    monkeypatch.setattr(services, "model_train_enqueue", lambda version: queued.append(version.pk))
    url = reverse("admin:recommendations_modelversion_train")
    assert staff_client.get(url).status_code == 200
    bad = staff_client.post(url, {"algorithm": "ease", "params": '{"lam": -1}', "slot": "default"})
    assert bad.status_code == 200 and "lam must be &gt; 0" in bad.content.decode()
    bad_json = staff_client.post(url, {"algorithm": "ease", "params": "{oops", "slot": "default"})
    assert "not valid JSON" in bad_json.content.decode()
    ok = staff_client.post(url, {"algorithm": "ease", "params": '{"lam": 100}', "slot": "default"})
    assert ok.status_code == 302
    version = ModelVersion.objects.get()
    assert version.trigger == "admin" and version.params["lam"] == 100 and queued == [version.pk]


def test_progress_endpoint(staff_client, store):
    from django.test import Client

    running = ModelVersion.objects.create(algorithm="als", status="running", progress=42, stage="fitting als")
    url = reverse("admin:recommendations_modelversion_progress")
    payload = staff_client.get(url).json()["versions"]
    assert payload == [{**payload[0], "id": running.pk, "progress": 42, "stage": "fitting als", "status": "running"}]
    assert staff_client.get(url, {"ids": str(running.pk)}).json()["versions"][0]["progress"] == 42
    assert Client().get(url).status_code == 302  # not for shoppers: to the admin login


def test_activate_and_retrain_actions(staff_client, store, trained, monkeypatch):
    queued = []
    monkeypatch.setattr(services, "model_train_enqueue", lambda version: queued.append(version.pk))
    other = services.model_train(version_id=services.model_version_create(algorithm="popularity").pk)
    url = reverse("admin:recommendations_modelversion_changelist")
    staff_client.post(url, {"action": "activate_action", "_selected_action": [other.pk]})
    other.refresh_from_db()
    assert other.is_active
    staff_client.post(url, {"action": "retrain_action", "_selected_action": [trained.pk]})
    new = ModelVersion.objects.get(pk=queued[0])
    assert new.algorithm == "item_knn" and new.params == trained.params and new.trigger == "admin"
    failed = ModelVersion.objects.create(algorithm="x", status="failed")
    response = staff_client.post(url, {"action": "activate_action", "_selected_action": [failed.pk]}, follow=True)
    assert "cannot be activated" in response.content.decode()


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
            shop_services.order_place(
                lines=[shop_services.OrderLineIn(product=rec.picks[0].product, quantity=1, rec_list_id=rec.id)],
                user=user,
            )
    from recommendations import impressions, selectors

    impressions.drain()  # with Redis the lists are queued first
    rows = {r.name: r for r in selectors.experiment_report(experiment=exp)}
    assert rows["model"].ctr.successes == clicks == rows["model"].conversion.successes
    assert rows["model"].ctr.trials + rows["control"].ctr.trials == 24
    assert rows["control"].ctr.value == 0.0
    assert 0 <= rows["model"].ctr.low < rows["model"].ctr.value <= 1.0 == rows["model"].ctr.value
    assert rows["model"].ctr_p_vs_control < 0.05
    assert rows["model"].offline_ndcg == trained.ndcg and rows["model"].revenue > 0
    response = staff_client.get(reverse("admin:recommendations_experiment_report", args=[exp.pk]))
    html = response.content.decode()
    assert response.status_code == 200 and "<svg" in html and "95% Wilson interval" in html
    assert f"{trained.ndcg:.4f}" in html
    assert Interaction.objects.filter(kind=Interaction.Kind.CLICK).count() == clicks


def test_deleting_versions(staff_client, store, trained, django_capture_on_commit_callbacks):
    from django.core.files.storage import default_storage

    old = services.model_train(version_id=services.model_version_create(algorithm="popularity").pk)
    assert not old.is_active
    url = reverse("admin:recommendations_modelversion_changelist")
    # a selection with the active version is refused as a whole
    staff_client.post(url, {"action": "delete_selected", "_selected_action": [old.pk, trained.pk], "post": "yes"})
    assert ModelVersion.objects.filter(pk__in=[old.pk, trained.pk]).count() == 2
    with django_capture_on_commit_callbacks(execute=True):
        staff_client.post(url, {"action": "delete_selected", "_selected_action": [old.pk], "post": "yes"})
    assert not ModelVersion.objects.filter(pk=old.pk).exists()
    assert not default_storage.exists(old.artifact.name)
    assert ModelVersion.objects.filter(pk=trained.pk, is_active=True).exists()
    with pytest.raises(services.TrainingError, match="is active"):
        services.model_version_delete(version=trained)
    assert staff_client.get(reverse("admin:recommendations_modelversion_delete", args=[trained.pk])).status_code == 403
