"""manage.py train and manage.py recommend."""

from __future__ import annotations

import csv
import io

import pytest
from django.core.management import CommandError, call_command

from recommendations.models import ModelVersion
from shop.models import Interaction, User

pytestmark = pytest.mark.django_db


def test_train_inline_with_progress_and_result(store):
    out, err = io.StringIO(), io.StringIO()
    call_command("train", "--algorithm", "item_knn", "--params", '{"k": 20}', stdout=out, stderr=err)
    version = ModelVersion.objects.get()
    assert version.status == "succeeded" and version.is_active and version.trigger == "command"
    assert f"item_knn#{version.pk}: " in out.getvalue() and "ndcg@10" in out.getvalue()
    assert "100%" in err.getvalue()  # the tqdm bar


def test_train_rejects_bad_input(store):
    with pytest.raises(CommandError, match="not valid JSON"):
        call_command("train", "--params", "{lam: 3}")
    with pytest.raises(CommandError, match="JSON object"):
        call_command("train", "--params", "[1]")
    with pytest.raises(CommandError, match="unknown algorithm"):
        call_command("train", "--algorithm", "deep")
    with pytest.raises(CommandError, match="training failed"):
        call_command("train", "--algorithm", "ease", "--params", '{"max_items": 3}', stderr=io.StringIO())
    assert ModelVersion.objects.get().status == "failed"


def test_train_queue_and_if_none(store, django_capture_on_commit_callbacks, monkeypatch):
    from recommendations import tasks

    sent = []
    monkeypatch.setattr(tasks.model_train_task, "delay", lambda pk: sent.append(pk) or type("R", (), {"id": "t-1"})())
    out = io.StringIO()
    with django_capture_on_commit_callbacks(execute=True):
        call_command("train", "--if-none", "--queue", stdout=out)
    version = ModelVersion.objects.get()
    assert version.status == "queued" and sent == [version.pk] and "Queued" in out.getvalue()
    assert ModelVersion.objects.get().task_id == "t-1"
    out = io.StringIO()
    call_command("train", "--if-none", "--queue", stdout=out)
    assert "not training" in out.getvalue() and ModelVersion.objects.count() == 1


def test_recommend_export_format(store, trained, tmp_path):
    user = store.customers[0]
    User.objects.filter(pk=user.pk).update(external_id="CUST-1")
    path = tmp_path / "recs.csv"
    err = io.StringIO()
    call_command(
        "recommend", "--all", "--n", "3", "--out", str(path), "--batch-size", "7", stdout=io.StringIO(), stderr=err
    )
    rows = list(csv.reader(path.open()))
    assert rows[0] == ["user", "rank", "sku", "score"]
    body = rows[1:]
    assert len(body) == 3 * len(store.customers)
    users = [r[0] for r in body]
    assert users[:3] == ["CUST-1"] * 3 and str(store.customers[1].pk) in users
    assert [r[1] for r in body[:3]] == ["1", "2", "3"]
    skus = {p.sku for p in store.products}
    assert all(r[2] in skus for r in body)
    scores = [float(r[3]) for r in body[:3]]
    assert scores == sorted(scores, reverse=True)
    bought = set(
        Interaction.objects.filter(user=user, kind=Interaction.Kind.PURCHASE).values_list("product__sku", flat=True)
    )
    assert not bought & {r[2] for r in body[:3]}
    assert "100%" in err.getvalue()


def test_recommend_export_rejects_bad_input(store, tmp_path):
    with pytest.raises(CommandError, match="--n must be"):
        call_command("recommend", "--all", "--n", "0", "--out", str(tmp_path / "x.csv"))
    with pytest.raises(CommandError, match="unknown user"):
        call_command("recommend", "--user", "999999", "--out", str(tmp_path / "x.csv"))
    with pytest.raises(CommandError, match="unknown strategy"):
        call_command("recommend", "--all", "--strategy", "magic", "--out", str(tmp_path / "x.csv"))
