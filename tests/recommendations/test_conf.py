"""Settings of the recommendations app (recommendations.conf): kinds by name."""

from __future__ import annotations

import pytest

from recommendations import conf
from recommendations.artifacts import kind_weights_parse
from shop.models import Interaction


def test_exclude_kinds_take_kind_names(settings):
    settings.AFFINITY_RECOMMEND_EXCLUDE_KINDS = {"purchase": None, "view": 1, "add_to_cart": 0.5}
    forever, windows = conf.exclude_kinds()
    assert forever == [Interaction.Kind.PURCHASE]
    assert windows == {Interaction.Kind.VIEW: 86400.0, Interaction.Kind.ADD_TO_CART: 43200.0}
    settings.AFFINITY_RECOMMEND_EXCLUDE_KINDS = {"wishlist": None}  # a new value is converted anew
    assert conf.exclude_kinds() == ([Interaction.Kind.WISHLIST], {})
    settings.AFFINITY_RECOMMEND_EXCLUDE_KINDS = {"bought": None}
    with pytest.raises(ValueError, match="unknown interaction kind 'bought' in AFFINITY_RECOMMEND_EXCLUDE_KINDS"):
        conf.exclude_kinds()


def test_the_default_exclusions_are_the_documented_ones(settings):
    forever, windows = conf.exclude_kinds()
    assert forever == [Interaction.Kind.PURCHASE]
    assert windows == {
        Interaction.Kind.VIEW: 86400.0,
        Interaction.Kind.CLICK: 86400.0,
        Interaction.Kind.ADD_TO_CART: 7 * 86400.0,
    }


def test_kind_weights_by_name_or_code():
    assert kind_weights_parse({"purchase": 5, "add_to_cart": 2, 1: 0.5}) == {5: 5.0, 3: 2.0, 1: 0.5}
    with pytest.raises(ValueError, match="unknown interaction kind 'likes' in kind weights"):
        kind_weights_parse({"likes": 1})
