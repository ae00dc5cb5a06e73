"""matrix.py: event weights, time decay, id maps, fold-in rows, validation."""

from __future__ import annotations

import math
import time

import numpy as np
import pytest

from recommendations.engine import (
    DEFAULT_KIND_WEIGHTS,
    EngineError,
    InteractionMatrix,
    Kind,
    UnknownIdError,
    event_weights,
    matrix_build,
    recent_popularity,
)

DAY = 86_400.0


def build(users, items, kinds, values=None, times=None, **kwargs) -> InteractionMatrix:
    n = len(users)
    return matrix_build(
        users=np.asarray(users, np.int64),
        items=np.asarray(items, np.int64),
        kinds=np.asarray(kinds, np.int16),
        values=np.ones(n, np.float32) if values is None else np.asarray(values, np.float32),
        times=np.zeros(n) if times is None else np.asarray(times, np.float64),
        **kwargs,
    )


def test_weights_per_kind_and_duplicates_summed() -> None:
    m = build(
        users=[10, 10, 10, 20],
        items=[7, 7, 9, 9],
        kinds=[Kind.VIEW, Kind.VIEW, Kind.WISHLIST, Kind.CLICK],
    )
    assert m.user_ids.tolist() == [10, 20] and m.item_ids.tolist() == [7, 9]
    assert m.user_items.dtype == np.float32
    np.testing.assert_allclose(m.user_items.toarray(), [[2.0, 2.0], [0.0, 1.0]])


def test_quantity_is_log_damped_and_capped() -> None:
    m = build(
        users=[1, 2, 3, 4],
        items=[5, 5, 5, 5],
        kinds=[Kind.PURCHASE] * 4,
        values=[1, 12, 0, 1_000_000],
    )
    expected = [5.0, 5.0 * (1 + math.log(12)), 5.0, 5.0 * (1 + math.log(100))]
    np.testing.assert_allclose(m.user_items.toarray().ravel(), expected, rtol=1e-6)


def test_ratings_are_centred_and_negative_sums_clipped() -> None:
    m = build(
        users=[1, 2, 3, 3],
        items=[5, 5, 5, 6],
        kinds=[Kind.RATING, Kind.RATING, Kind.VIEW, Kind.VIEW],
        values=[5, 1, 1, 1],
    )
    dense = m.user_items.toarray()
    # 5 stars: 2 * (5 - 3) = 4; 1 star: 2 * (1 - 3) = -4 -> clipped, entry dropped
    assert dense[0, 0] == pytest.approx(4.0)
    assert dense[1].tolist() == [0.0, 0.0]
    assert m.user_items.nnz == 3 and m.user_items.data.min() > 0


def test_remove_from_cart_cancels_add_to_cart() -> None:
    m = build(
        users=[1, 1, 1],
        items=[5, 5, 5],
        kinds=[Kind.VIEW, Kind.ADD_TO_CART, Kind.REMOVE_FROM_CART],
        values=[1, 2, 2],
    )
    assert m.user_items.toarray()[0, 0] == pytest.approx(1.0)  # the view is left


def test_time_decay_halves_per_half_life() -> None:
    now = 100 * DAY
    m = build(
        users=[1, 2, 3, 4],
        items=[5, 5, 5, 5],
        kinds=[Kind.VIEW] * 4,
        times=[now, now - 7 * DAY, now - 14 * DAY, now + DAY],
        half_life_days=7.0,
        now=now,
    )
    np.testing.assert_allclose(m.user_items.toarray().ravel(), [1.0, 0.5, 0.25, 1.0], rtol=1e-6)
    # now defaults to the newest event
    m2 = build(users=[1, 2], items=[5, 5], kinds=[1, 1], times=[0.0, 7 * DAY], half_life_days=7.0)
    np.testing.assert_allclose(m2.user_items.toarray().ravel(), [0.5, 1.0])


def test_fixed_universes_keep_empty_columns_and_drop_outsiders() -> None:
    m = build(
        users=[1, 2, 3],
        items=[30, 10, 99],
        kinds=[1, 1, 1],
        item_ids=np.array([30, 20, 10]),
        user_ids=np.array([2, 1]),
    )
    assert m.shape == (2, 3)
    np.testing.assert_array_equal(m.user_items.toarray(), [[0, 0, 1], [1, 0, 0]])


def test_id_maps_both_ways() -> None:
    m = build(users=[40, 10, 30], items=[8, 6, 8], kinds=[1, 1, 1])
    assert m.user_index([10, 30, 40, 99]).tolist() == [0, 1, 2, -1]
    assert m.item_index(np.array([6, 8, 7])).tolist() == [0, 1, -1]
    assert m.user_ids[m.user_index([30])].tolist() == [30]
    np.testing.assert_array_equal(m.user_rows([40]).toarray(), [[0, 1]])
    with pytest.raises(UnknownIdError, match="99"):
        m.user_rows([99])


def test_history_rows_for_new_users_ignore_unknown_items() -> None:
    m = build(users=[1, 2], items=[5, 6], kinds=[1, 1])
    rows = m.history_rows(
        [
            (np.array([6, 6, 777]), np.array([1.0, 2.0, 5.0])),
            (np.array([], np.int64), np.array([])),
            (np.array([5]), np.array([-3.0])),
        ]
    )
    assert rows.shape == (3, 2) and rows.dtype == np.float32
    np.testing.assert_array_equal(rows.toarray(), [[0, 3], [0, 0], [0, 0]])
    assert m.history_rows([]).shape == (0, 2)
    with pytest.raises(EngineError, match="NaN"):
        m.history_rows([(np.array([5]), np.array([np.nan]))])
    with pytest.raises(EngineError, match="2 item ids but 1 weights"):
        m.history_rows([(np.array([5, 6]), np.array([1.0]))])


def test_event_weights_match_the_matrix() -> None:
    weights = event_weights(
        kinds=np.array([Kind.PURCHASE, Kind.VIEW]),
        values=np.array([12.0, 1.0]),
        times=np.array([0.0, 7 * DAY]),
        half_life_days=7.0,
    )
    np.testing.assert_allclose(weights, [0.5 * 5 * (1 + math.log(12)), 1.0], rtol=1e-6)
    assert set(DEFAULT_KIND_WEIGHTS) == {int(k) for k in Kind}


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("values", [1.0, np.nan], "values contains 1 NaN"),
        ("times", [0.0, np.inf], "times contains 1 NaN"),
        ("kinds", [1, 42], r"kind code\(s\) \[42\]"),
        ("items", [1], "items has shape"),
    ],
)
def test_bad_events_are_rejected(field, value, message) -> None:
    events = {"users": [1, 2], "items": [3, 4], "kinds": [1, 1], "values": [1.0, 1.0], "times": [0.0, 1.0]}
    events[field] = value
    with pytest.raises(EngineError, match=message):
        build(**events)


def test_bad_parameters_are_rejected() -> None:
    with pytest.raises(EngineError, match="half_life_days"):
        build(users=[1], items=[1], kinds=[1], half_life_days=0.0)
    with pytest.raises(EngineError, match="unique"):
        build(users=[1], items=[1], kinds=[1], item_ids=np.array([1, 1]))
    with pytest.raises(EngineError, match="integers"):
        matrix_build(
            users=np.array([1.5]),
            items=np.array([1]),
            kinds=np.array([1]),
            values=np.array([1.0]),
            times=np.array([0.0]),
        )


def test_no_events_give_an_empty_matrix() -> None:
    m = build(users=[], items=[], kinds=[], item_ids=np.array([1, 2]))
    assert m.shape == (0, 2) and m.user_items.nnz == 0


def test_recent_popularity() -> None:
    popularity = recent_popularity(
        items=np.array([1, 1, 2, 9]),
        times=np.array([10 * DAY, 3 * DAY, 10 * DAY, 10 * DAY]),
        item_ids=np.array([2, 1, 3]),
        half_life_days=7.0,
    )
    np.testing.assert_allclose(popularity, [1.0, 1.5, 0.0])


def test_one_million_events_build_fast() -> None:
    rng = np.random.default_rng(0)
    n = 1_000_000
    users = rng.integers(0, 50_000, n)
    items = rng.zipf(1.3, n) % 20_000
    kinds = rng.choice(np.array([1, 2, 3, 5, 7], np.int16), n)
    values = rng.integers(1, 5, n).astype(np.float32)
    times = rng.uniform(0, 365 * DAY, n)
    build(users=users[:1000], items=items[:1000], kinds=kinds[:1000])  # warm-up
    started = time.perf_counter()
    m = matrix_build(users=users, items=items, kinds=kinds, values=values, times=times, half_life_days=30.0)
    elapsed = time.perf_counter() - started
    assert m.user_items.nnz > 500_000
    # well under a second on an idle core; generous bound for a shared CI machine
    assert elapsed < 3.0, elapsed


def test_one_history_row_equals_the_same_row_in_a_batch() -> None:
    """One history (the per-request path, built straight into CSR) gives the row a
    batch gives: duplicates summed, negative sums clipped, unknown items ignored."""
    rng = np.random.default_rng(5)
    m = build(users=list(range(40)), items=list(range(100, 140)), kinds=[1] * 40)
    for size in (1, 5, 40):
        items = np.concatenate([rng.choice(np.arange(100, 140), size), [10**9]])
        weights = rng.normal(1.0, 2.0, items.size)
        one = m.history_rows([(items, weights)])
        batch = m.history_rows([(items[:0], weights[:0]), (items, weights)])[1]
        assert one.shape == (1, 40) and one.dtype == np.float32
        np.testing.assert_array_equal(one.indices, batch.indices)
        np.testing.assert_allclose(one.toarray(), batch.toarray(), rtol=1e-6)
        assert (one.data > 0).all()
    assert m.history_rows([(np.array([10**9]), np.array([1.0]))]).nnz == 0
