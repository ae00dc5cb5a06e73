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
    with pytest.raises(CommandError, match="factors must be between 1 and 1024, got 1000000000"):
        call_command("train", "--algorithm", "als", "--params", '{"factors": 1000000000}')
    assert not ModelVersion.objects.exists()  # refused before a version is queued
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


def test_evaluate_on_the_database_prints_and_writes_every_algorithm(store, tmp_path):
    out = io.StringIO()
    call_command(
        "evaluate",
        "--algorithms",
        "popularity,ease,item_knn,hybrid",
        "--protocol",
        "random-per-user",
        "--out",
        str(tmp_path / "table.csv"),
        stdout=out,
        stderr=io.StringIO(),
    )
    text = out.getvalue()
    assert "holdout random-per-user" in text and "| ease | ok |" in text and "best: " in text
    with open(tmp_path / "table.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert {r["algorithm"] for r in rows} == {"popularity", "ease", "item_knn", "hybrid"}
    assert all(r["ndcg"] and r["map"] and r["coverage"] and r["train_seconds"] for r in rows if r["status"] == "ok")
    call_command(
        "evaluate",
        "--algorithms",
        "ease",
        "--out",
        str(tmp_path / "table.md"),
        stdout=io.StringIO(),
        stderr=io.StringIO(),
    )
    assert (tmp_path / "table.md").read_text().startswith("| algorithm | status | NDCG@10 |")


def test_evaluate_a_file_without_touching_the_database(db, tmp_path):
    path = tmp_path / "ratings.csv"
    with open(path, "w", newline="") as handle:
        out = csv.writer(handle)
        out.writerow(["customer", "sku", "stars", "when"])
        for user in range(30):
            for item in range(8):
                product = (user % 3) * 8 + item
                out.writerow(
                    [f"u{user}", f"p{product}", 4 + (item % 2), f"2015-0{1 + item % 9}-1{user % 10}T10:00:00Z"]
                )
    text = io.StringIO()
    call_command(
        "evaluate",
        "--file",
        str(path),
        "--map",
        "user=customer,item=sku,value=stars,timestamp=when",
        "--default-kind",
        "rating",
        "--algorithms",
        "ease,item_knn",
        stdout=text,
        stderr=io.StringIO(),
    )
    assert "holdout random-per-user" in text.getvalue() and "ratings" in text.getvalue()
    assert Interaction.objects.count() == 0 and User.objects.count() == 0
    with pytest.raises(CommandError, match="unknown algorithm"):
        call_command(
            "evaluate",
            "--file",
            str(path),
            "--map",
            "user=customer,item=sku,value=stars,timestamp=when",
            "--algorithms",
            "deep",
            stderr=io.StringIO(),
            stdout=io.StringIO(),
        )


def test_recommend_export_of_a_store_imported_from_events(tmp_path):
    """A store known only from an events file: its products are placeholders with
    untracked stock, and every customer gets a full list of them."""
    events = tmp_path / "events.csv"
    lines = ["user,item,timestamp,kind"]
    for u in range(40):
        for i in range(8):
            lines.append(f"c{u},p{(u % 4) * 10 + (u + i * 3) % 10},{1_700_000_000 + u * 100 + i},purchase")
    events.write_text("\n".join(lines) + "\n")
    call_command("import_interactions", str(events), "--no-progress", stdout=io.StringIO())
    call_command("train", "--algorithm", "item_knn", stdout=io.StringIO(), stderr=io.StringIO())
    assert ModelVersion.objects.get().is_active
    User.objects.create_user(email="new@customers.affinity.example", password=None, external_id="c-new")
    path = tmp_path / "recs.csv"
    call_command("recommend", "--all", "--n", "5", "--out", str(path), stdout=io.StringIO(), stderr=io.StringIO())
    body = list(csv.reader(path.open()))[1:]
    per_user: dict[str, list[str]] = {}
    for user, _rank, sku, _score in body:
        per_user.setdefault(user, []).append(sku)
    # c-new has no history: the serving fallbacks (trending) fill its list too
    assert len(per_user) == 41 and all(len(skus) == 5 for skus in per_user.values())
    bought = {
        (u, s) for u, s in Interaction.objects.values_list("user__external_id", "product__sku")
    }  # consumed: never recommended back
    assert not any((user, sku) in bought for user, skus in per_user.items() for sku in skus)
