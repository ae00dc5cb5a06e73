"""Settings of the recommendations app (recommendations.conf): kinds by name."""

from __future__ import annotations

import pytest

from recommendations import conf
from recommendations.artifacts import kind_weights_parse
from shop.models import Interaction


def test_exclude_kinds_take_kind_names(settings):
    settings.AFFINITY_CONSUMED_KINDS = ["purchase"]
    settings.AFFINITY_RECOMMEND_RECENT_EXCLUDE_DAYS = {"view": 1, "add_to_cart": 0.5}
    forever, windows = conf.exclude_kinds()
    assert forever == [Interaction.Kind.PURCHASE]
    assert windows == {Interaction.Kind.VIEW: 86400.0, Interaction.Kind.ADD_TO_CART: 43200.0}
    settings.AFFINITY_CONSUMED_KINDS = ["wishlist"]  # a new value is converted anew
    settings.AFFINITY_RECOMMEND_RECENT_EXCLUDE_DAYS = {}
    assert conf.exclude_kinds() == ([Interaction.Kind.WISHLIST], {})
    settings.AFFINITY_CONSUMED_KINDS = ["bought"]
    with pytest.raises(ValueError, match="unknown interaction kind 'bought' in AFFINITY_CONSUMED_KINDS"):
        conf.exclude_kinds()


def test_a_consumed_kind_is_excluded_for_ever_even_if_also_windowed(settings):
    settings.AFFINITY_CONSUMED_KINDS = ["purchase", "view"]
    settings.AFFINITY_RECOMMEND_RECENT_EXCLUDE_DAYS = {"view": 1, "click": 2}
    assert conf.exclude_kinds() == (
        sorted([Interaction.Kind.PURCHASE, Interaction.Kind.VIEW]),
        {Interaction.Kind.CLICK: 2 * 86400.0},
    )


def test_the_default_exclusions_are_the_documented_ones(settings):
    forever, windows = conf.exclude_kinds()
    assert forever == sorted([Interaction.Kind.PURCHASE, Interaction.Kind.RATING])
    assert conf.consumed_kinds() == forever
    assert windows == {
        Interaction.Kind.VIEW: 86400.0,
        Interaction.Kind.CLICK: 86400.0,
        Interaction.Kind.ADD_TO_CART: 7 * 86400.0,
    }


def test_kind_weights_by_name_or_code():
    assert kind_weights_parse({"purchase": 5, "add_to_cart": 2, 1: 0.5}) == {5: 5.0, 3: 2.0, 1: 0.5}
    with pytest.raises(ValueError, match="unknown interaction kind 'likes' in kind weights"):
        kind_weights_parse({"likes": 1})
