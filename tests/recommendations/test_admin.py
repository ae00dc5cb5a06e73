"""Admin: model versions (chart, train, actions, live progress); the experiment
report page is tested with the report in test_experiments.py."""

from __future__ import annotations

import pytest
from django.urls import reverse

from recommendations import services
from recommendations.models import ModelVersion

pytestmark = pytest.mark.django_db


def test_changelist_shows_metrics_chart_and_train_button(staff_client, store, trained):
    response = staff_client.get(reverse("admin:recommendations_modelversion_changelist"))
    html = response.content.decode()
    assert response.status_code == 200
    # a canvas per chart, its spec as JSON data beside it (no inline script), Chart.js and the drawing script
    assert '<canvas data-chart="chart-ndcg"' in html and '<canvas data-chart="chart-recall"' in html
    assert '<script id="chart-ndcg" type="application/json">' in html
    assert "vendor/chartjs/4.6.2/chart.umd.min.js" in html and "admin/js/affinity-charts.js" in html
    assert html.index("chart.umd.min.js") < html.index("affinity-charts.js")
    assert "<circle" not in html and "<rect" not in html  # the old SVG charts are gone
    spec = response.context["metrics_chart"]
    (line,) = spec["datasets"]
    assert spec["title"] == "NDCG@10 on the temporal holdout, by algorithm" and line["label"] == "item_knn"
    assert line["data"][0]["y"] == trained.ndcg and line["active"] == [True]
    assert line["tooltips"] == [f"item_knn#{trained.pk} (default): ndcg@10 {trained.ndcg:.4f} — active"]
    assert f"{trained.ndcg:.4f}" in html
    assert reverse("admin:recommendations_modelversion_train") in html
    assert "recommendations/admin_progress.js" in html
    detail = staff_client.get(reverse("admin:recommendations_modelversion_change", args=[trained.pk]))
    assert detail.status_code == 200 and "ndcg@10" in detail.content.decode()


def test_changelist_without_versions_says_so_instead_of_a_chart(staff_client, db):
    html = staff_client.get(reverse("admin:recommendations_modelversion_changelist")).content.decode()
    assert "No NDCG@10 on the temporal holdout, by algorithm yet: train a model to see it here." in html
    assert "<canvas" not in html and 'type="application/json"' not in html


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
