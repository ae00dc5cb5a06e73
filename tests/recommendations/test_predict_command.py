"""`manage.py predict_customers`: inline, queued, and only once for the demo's bootstrap."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

from recommendations.models import PredictionRun
from shop.models import CustomerPrediction, Interaction
from tests.factories import ProductFactory, UserFactory, interaction_make

pytestmark = pytest.mark.django_db


def _history():
    product = ProductFactory(price=Decimal("10.00"))
    now = timezone.now()
    for i in range(12):
        customer = UserFactory()
        for k in range(1 + i % 4):
            interaction_make(
                user=customer,
                product=product,
                kind=Interaction.Kind.PURCHASE,
                occurred_at=now - timedelta(days=20 * k + i),
            )


def test_inline_run_stores_predictions_and_if_none_skips_the_next():
    _history()
    out = StringIO()
    call_command("predict_customers", stdout=out)
    run = PredictionRun.objects.get()
    assert run.status == PredictionRun.Status.DONE, run.error
    assert CustomerPrediction.objects.count() == 12
    call_command("predict_customers", "--if-none", "--queue", stdout=out)
    assert PredictionRun.objects.count() == 1
    assert "not computing them again" in out.getvalue()


def test_an_unknown_model_is_a_clear_error():
    with pytest.raises(CommandError, match="unknown transactions model"):
        call_command("predict_customers", "--model", "nope")
    assert not PredictionRun.objects.exists()
