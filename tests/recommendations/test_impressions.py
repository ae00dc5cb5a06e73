"""The impression queue (``recommendations.impressions``) on a real Redis: lists are
queued, clickable at once, written once each, never for a forgotten customer, and
drained by a real Celery worker."""

from __future__ import annotations

import json

import pytest
from django.conf import settings as django_settings
from django_celery_beat.models import PeriodicTask

from recommendations import impressions, services
from recommendations.models import Impression, ModelVersion
from shop.services.customers import user_forget
from tests.conftest import wait_for
from tests.recommendations.conftest import build_store

pytestmark = pytest.mark.skipif(not django_settings.REDIS_URL, reason="the queue needs Redis (set REDIS_URL)")


@pytest.fixture
def small(db):
    return build_store(n_customers=12)


def test_a_list_is_queued_clickable_at_once_and_written_once(small):
    user = small.customers[0]
    rec = services.recommend_for_user(user=user, n=3)
    assert impressions.queued() and impressions.pending() == 1
    assert not Impression.objects.filter(pk=rec.id).exists()  # not written yet...
    click = services.click_record(rec_list_id=rec.id, product=rec.picks[0].product, user=user)  # ...but clickable
    assert click.rec_list_id == rec.id
    with pytest.raises(ValueError, match="was not in recommendation list"):
        services.click_record(rec_list_id=rec.id, product=small.products[-1], user=user)
    assert impressions.drain() == 1
    row = Impression.objects.get(pk=rec.id)
    assert row.user_id == user.pk and row.context == "home" and row.strategy == rec.strategy
    assert row.product_ids == [p.product.pk for p in rec.picks]
    assert row.reason_codes == [p.reason_code for p in rec.picks]
    assert impressions.pending() == 0 and impressions.drain() == 0
    assert Impression.objects.count() == 1
    # the queued copy is dropped once written (Redis does not keep every list for an hour);
    # the row answers clicks from now on
    assert not impressions._client().exists(impressions.SHOWN_KEY.format(id=rec.id))
    assert services.click_record(rec_list_id=rec.id, product=rec.picks[1].product, user=user).rec_list_id == rec.id


def test_a_drainer_that_died_before_trimming_writes_nothing_twice(small):
    recs = [services.recommend_for_user(user=u, n=2) for u in small.customers[:5]]
    client = impressions._client()
    # what a drainer had done when it died: the batch inserted, the queue not trimmed
    impressions._insert_batch([json.loads(r) for r in client.lrange(impressions.QUEUE_KEY, 0, 2)])
    assert Impression.objects.count() == 3 and impressions.pending() == 5
    assert impressions.drain() == 2  # only the two missing rows
    assert sorted(str(i) for i in Impression.objects.values_list("pk", flat=True)) == sorted(str(r.id) for r in recs)
    assert impressions.pending() == 0


def test_one_drainer_at_a_time(small):
    services.recommend_for_user(user=small.customers[0], n=2)
    client = impressions._client()
    client.set(impressions.LOCK_KEY, "someone-else", ex=30)
    assert impressions.drain() == 0 and impressions.pending() == 1  # the other holds the lock
    client.delete(impressions.LOCK_KEY)
    assert impressions.drain() == 1


def test_the_queue_drains_itself_past_the_threshold(small, settings):
    settings.AFFINITY_IMPRESSIONS_DRAIN_AT = 4
    for user in small.customers[:3]:
        services.recommend_for_user(user=user, n=2)
    assert Impression.objects.count() == 0
    services.recommend_for_user(user=small.customers[3], n=2)  # the fourth append drains inline
    assert Impression.objects.count() == 4 and impressions.pending() == 0


def test_no_queued_list_of_a_forgotten_customer_is_written(small, django_capture_on_commit_callbacks):
    victim, other = small.customers[0], small.customers[1]
    victim_id = victim.pk
    services.recommend_for_user(user=victim, n=2)  # queued before they leave
    services.recommend_for_user(user=other, n=2)
    with django_capture_on_commit_callbacks(execute=True):
        user_forget(user=victim)
    assert not Impression.objects.filter(user_id=victim_id).exists()
    assert Impression.objects.filter(user_id=other.pk).count() == 1  # the others' lists were written
    # a list served from a stale request after the forgetting is dropped by the drain
    impressions.record(Impression(user_id=victim_id, context="home", strategy="trending", product_ids=[1]))
    impressions.drain()
    assert not Impression.objects.filter(user_id=victim_id).exists()


def test_a_version_deleted_meanwhile_does_not_break_the_batch(small):
    version = ModelVersion.objects.create(algorithm="popularity", status="succeeded")
    impressions.record(
        Impression(
            user_id=None,
            session_key="s1",
            context="home",
            strategy="model:x",
            model_version_id=version.pk,
            product_ids=[1],
        )
    )
    impressions.record(Impression(user_id=None, session_key="s2", context="home", strategy="trending", product_ids=[2]))
    version.delete()
    assert impressions.drain() == 2
    assert set(Impression.objects.values_list("session_key", "model_version_id")) == {("s1", None), ("s2", None)}


def test_without_redis_lists_are_written_directly(small, settings):
    settings.REDIS_URL = "redis://127.0.0.1:1/0"  # nothing listens there
    rec = services.recommend_for_user(user=small.customers[0], n=2)
    assert Impression.objects.filter(pk=rec.id).exists()  # the fallback: one INSERT
    settings.AFFINITY_IMPRESSIONS_QUEUE = False
    settings.REDIS_URL = django_settings.REDIS_URL
    assert not impressions.queued()
    rec = services.recommend_for_user(user=small.customers[1], n=2)
    assert Impression.objects.filter(pk=rec.id).exists()


def test_beat_schedules_the_drain_every_few_seconds(db):
    task = PeriodicTask.objects.get(task="recommendations.impressions_drain")
    assert task.enabled and task.interval.every == 5 and task.interval.period == "seconds"


@pytest.mark.integration
def test_a_real_worker_drains_the_queue(transactional_db, celery_worker):
    from recommendations.tasks import impressions_drain_task

    store = build_store(n_customers=6)
    recs = [services.recommend_for_user(user=u, n=2) for u in store.customers]
    impressions_drain_task.delay()
    wait_for(
        lambda: Impression.objects.count() == len(recs), timeout=60, what=f"the worker's drain\n{celery_worker.log()}"
    )
    assert set(Impression.objects.values_list("pk", flat=True)) == {r.id for r in recs}


def test_in_a_request_the_drain_waits_for_the_response(small, settings):
    from rest_framework.test import APIClient

    settings.AFFINITY_IMPRESSIONS_DRAIN_AT = 3
    shopper = small.customers[4]
    api = APIClient()
    api.force_authenticate(shopper)
    drained_during = []
    original = impressions.drain

    def watching(**kwargs):
        import traceback

        files = {frame.filename for frame in traceback.extract_stack()}
        drained_during.append(any(f.endswith("recommendations/api.py") for f in files))  # inside the view?
        return original(**kwargs)

    impressions.drain = watching
    try:
        for _ in range(3):
            assert api.get("/api/v1/recommendations/me", {"n": 2}).status_code == 200
    finally:
        impressions.drain = original
    assert drained_during == [False]  # once, when the third response was finished, not in the view
    assert Impression.objects.filter(user_id=shopper.pk).count() == 3 and impressions.pending() == 0


def test_an_entry_the_database_refuses_is_dropped_not_stuck(small, caplog):
    good = services.recommend_for_user(user=small.customers[0], n=2)
    bad = Impression(user_id=None, session_key="x", context="c" * 40, strategy="trending", product_ids=[1])
    impressions.record(bad)  # a context longer than the column: PostgreSQL refuses it
    after = services.recommend_for_user(user=small.customers[1], n=2)
    impressions.drain()
    assert impressions.pending() == 0  # nothing left blocking the queue
    written = set(Impression.objects.values_list("pk", flat=True))
    assert {good.id, after.id} <= written
    from django.db import connection

    if connection.vendor == "postgresql":  # SQLite does not check lengths
        assert bad.id not in written and "dropped a queued impression" in caplog.text


def test_a_queue_outage_is_not_waited_on_for_every_list(small, settings, monkeypatch):
    redis_url = settings.REDIS_URL
    settings.REDIS_URL = "redis://127.0.0.1:1/0"  # nothing listens there
    calls = []
    enqueue = impressions._enqueue

    def counting(client):
        calls.append(client)
        return enqueue(client)

    monkeypatch.setattr(impressions, "_enqueue", counting)
    recs = [services.recommend_for_user(user=u, n=2) for u in small.customers[:3]]
    assert Impression.objects.filter(pk__in=[r.id for r in recs]).count() == 3  # all written directly
    assert len(calls) == 1  # Redis was tried once, then left alone for a while
    monkeypatch.setattr(impressions, "QUEUE_RETRY_SECONDS", 0.0)
    monkeypatch.setattr(impressions, "_queue_retry_at", 0.0)  # the pause is over
    services.recommend_for_user(user=small.customers[3], n=2)
    assert len(calls) == 2  # and then it is tried again
    settings.REDIS_URL = redis_url
