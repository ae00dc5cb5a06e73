"""A web process loads the active model before its first request (shop.warmup)."""

from __future__ import annotations

import pytest

from recommendations import model_cache
from shop.warmup import warm

pytestmark = pytest.mark.django_db


def test_warm_loads_the_active_model_before_the_first_request(trained, settings):
    model_cache.reset()
    active = model_cache.snapshot().active["default"]
    assert active.id not in model_cache._models  # nothing loaded yet: the first request would read the artifact
    model_cache.reset()
    warm()
    assert active.id in model_cache._models


def test_warm_can_be_switched_off(trained, settings):
    settings.WARM_ON_START = False
    model_cache.reset()
    warm()
    assert not model_cache._models
