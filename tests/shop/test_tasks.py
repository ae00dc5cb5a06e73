"""Store housekeeping run by a real Celery worker process on the configured broker."""

from datetime import timedelta

import pytest
from django.db import transaction
from django.utils import timezone

from shop.models import Cart
from shop.tasks import carts_expire_task
from tests.conftest import wait_for


@pytest.mark.integration
def test_carts_expire_runs_in_a_real_worker(celery_worker):
    old = Cart.objects.create(session_key="stale")
    Cart.objects.filter(pk=old.pk).update(updated_at=timezone.now() - timedelta(days=45))
    Cart.objects.create(session_key="fresh")
    with transaction.atomic():
        transaction.on_commit(lambda: carts_expire_task.delay(30))
    wait_for(
        lambda: not Cart.objects.filter(session_key="stale").exists(),
        timeout=60,
        what=f"the worker to expire the stale cart; worker log:\n{celery_worker.log()}",
    )
    assert Cart.objects.filter(session_key="fresh").exists()
    assert "carts_expire: deleted 1 anonymous cart(s)" in celery_worker.log()
