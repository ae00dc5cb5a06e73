"""A shop's own data, through the commands a user runs, on each shape of data:
``import_catalogue`` (where the shape has one), ``import_interactions`` (twice: nothing
stored twice), ``train`` with no arguments, ``recommend --all``. Every customer gets n
picks, none of them a product they already have, and the picks find the products each
customer went on to want (held out of the files) clearly better than popularity does.

CI runs this file on PostgreSQL with the suite and once more on SQLite.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django.core.management import call_command

from recommendations.models import ModelVersion
from shop.models import Interaction, Product, User
from tests.own_data import make_shape, popularity_picks, read_export, recall

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

N = 10
NON_PERSONAL = {"popularity", "trending"}

SHAPES = {
    "ratings-only-no-catalogue": dict(kinds=("rating",), start=datetime(2015, 3, 1, tzinfo=UTC), days=900),
    "purchases-with-catalogue": dict(kinds=("purchase",), catalogue="full"),
    "view-heavy-events": dict(
        kinds=("view", "add_to_cart", "purchase"), kind_weights=(0.8, 0.12, 0.08), per_customer=20
    ),
    "tiny-single-kind-names-only": dict(customers=50, products=60, kinds=("purchase",), catalogue="names"),
}


@pytest.mark.parametrize("name", sorted(SHAPES))
def test_own_data_through_the_commands(name, tmp_path):
    shape = make_shape(tmp_path, name, **SHAPES[name])
    if shape.catalogue:
        call_command("import_catalogue", str(shape.catalogue), verbosity=0)
        listed = len(shape.catalogue.read_text(encoding="utf-8").splitlines()) - 1
        assert Product.objects.count() == listed
    call_command("import_interactions", str(shape.events), verbosity=0)
    stored = Interaction.objects.count()
    assert stored > 0
    call_command("import_interactions", str(shape.events), verbosity=0)  # the same file again
    assert Interaction.objects.count() == stored, "a second import of the same file stored events twice"

    call_command("train", verbosity=0)
    active = ModelVersion.objects.get(is_active=True)
    assert active.status == ModelVersion.Status.SUCCEEDED
    assert active.algorithm not in NON_PERSONAL, f"auto chose a non-personal model: {active.algorithm}"

    out = tmp_path / "recs.csv"
    call_command("recommend", "--all", "--n", str(N), "--out", str(out), verbosity=0)
    picks = read_export(out)
    customers = set(User.objects.filter(is_active=True, is_staff=False).values_list("external_id", flat=True))
    assert customers == set(shape.customers)
    short = {c: len(picks.get(c, [])) for c in customers if len(picks.get(c, [])) != N}
    assert not short, f"customers without {N} picks: {short}"
    consumed = {c: set(picks[c]) & shape.consumed.get(c, set()) for c in customers}
    assert not any(consumed.values()), (
        f"consumed products recommended back: { {c: s for c, s in consumed.items() if s} }"
    )

    model, baseline = recall(picks, shape, N), recall(popularity_picks(shape, N), shape, N)
    assert model >= 1.5 * baseline and model >= baseline + 0.05, (
        f"{name}: recall@{N} of {active.algorithm} {model:.3f} vs popularity {baseline:.3f}"
    )
