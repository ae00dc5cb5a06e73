"""Algorithm-specific checks against formulas computed by hand / in plain numpy."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from threadpoolctl import threadpool_info

from recommendations.engine import (
    EngineError,
    SideData,
    TooManyItemsError,
    algorithm_build,
    blas_single_thread,
    top_n,
)
from recommendations.engine.weighting import RowWeighting

from .conftest import groups_matrix, groups_side


def random_matrix(users: int = 40, items: int = 15, density: float = 0.3, seed: int = 0):
    rng = np.random.default_rng(seed)
    dense = (rng.random((users, items)) < density) * rng.integers(1, 4, (users, items))
    dense[np.arange(users), rng.integers(0, items, users)] = 1  # nobody empty
    return sp.csr_matrix(dense.astype(np.float32))


# --------------------------------------------------------------------------- EASE
def test_ease_matches_the_closed_form_and_folds_in_exactly() -> None:
    matrix = random_matrix()
    model = algorithm_build("ease", lam=5.0, weighting="none").fit(matrix)
    x = matrix.toarray().astype(np.float64)
    p = np.linalg.inv(x.T @ x + 5.0 * np.eye(x.shape[1]))
    b = -p / np.diag(p)
    np.fill_diagonal(b, 0.0)
    np.testing.assert_allclose(model.weights, b, rtol=1e-4, atol=1e-6)
    trained = x @ b  # the training users' scores
    for user in (0, 17, 39):  # fold-in of a single history row is the same computation
        np.testing.assert_allclose(model.score(matrix[user])[0], trained[user], rtol=1e-4, atol=1e-5)


def test_ease_refuses_too_many_items_with_a_clear_message() -> None:
    with pytest.raises(TooManyItemsError, match="15 items exceed max_items=10"):
        algorithm_build("ease", max_items=10).fit(random_matrix())


def test_ease_top_k_keeps_the_largest_weights() -> None:
    matrix = random_matrix()
    dense = algorithm_build("ease", lam=5.0).fit(matrix)
    sparse = algorithm_build("ease", lam=5.0, top_k=4).fit(matrix)
    assert sp.issparse(sparse.weights) and np.all(np.diff(sparse.weights.indptr) <= 4)
    row = dense.weights[3]
    kept = sparse.weights[3].toarray().ravel()
    assert set(np.flatnonzero(kept)) == set(np.argsort(-np.abs(row))[:4])


def test_ease_history_weighting_differs_from_training_weighting() -> None:
    matrix = random_matrix()
    binary = algorithm_build("ease", lam=5.0, weighting="none", history_weighting="binary")
    binary.fit(matrix)
    ones = matrix.copy()
    ones.data[:] = 1.0
    np.testing.assert_allclose(binary.score(matrix), ones.toarray() @ binary.weights, rtol=1e-5)


# --------------------------------------------------------------------------- item kNN
def test_item_knn_cosine_is_the_classic_formula() -> None:
    matrix = sp.csr_matrix(np.array([[1, 1, 0], [1, 0, 1], [0, 1, 1], [1, 1, 1]], np.float32))
    model = algorithm_build("item_knn", k=5).fit(matrix)
    x = matrix.toarray()
    norms = np.linalg.norm(x, axis=0)
    cosine = (x.T @ x) / np.outer(norms, norms)
    np.fill_diagonal(cosine, 0.0)
    np.testing.assert_allclose(model.similarity.toarray(), cosine, rtol=1e-6)
    # scores: every history item votes for its neighbours with its similarity
    np.testing.assert_allclose(model.score(matrix), x @ cosine, rtol=1e-6)
    shrunk = algorithm_build("item_knn", k=5, shrink=1.0).fit(matrix)
    np.testing.assert_allclose(shrunk.similarity[0, 1], 2 / (3 + 1.0), rtol=1e-6)


def test_item_knn_keeps_k_neighbours_per_item() -> None:
    model = algorithm_build("item_knn", k=2).fit(random_matrix())
    assert np.all(np.diff(model.similarity.indptr) <= 2)
    assert model.similarity.diagonal().max() == 0.0


def test_bm25_weights_by_hand() -> None:
    # item lengths 2 and 1 (avg 1.5); user 0 has 2 items (df 2), user 1 has 1
    matrix = sp.csr_matrix(np.array([[1, 1], [1, 0]], np.float32))
    weighting = RowWeighting("bm25", k1=1.2, b=0.75).fit(matrix)
    out = weighting.transform(matrix).toarray()
    norm = 1 - 0.75 + 0.75 * np.array([2, 1]) / 1.5
    idf = np.log1p((2 - np.array([2, 1]) + 0.5) / (np.array([2, 1]) + 0.5))
    expected = 2.2 / (1.2 * norm[None, :] + 1.0) * idf[:, None]
    expected[1, 1] = 0.0
    np.testing.assert_allclose(out, expected, rtol=1e-6)


def test_weighting_modes() -> None:
    matrix = sp.csr_matrix(np.array([[0, 3.0], [1.0, 0]], np.float32))
    assert RowWeighting("binary").transform(matrix).toarray().tolist() == [[0, 1], [1, 0]]
    np.testing.assert_allclose(RowWeighting("log").transform(matrix).data, np.log1p([3, 1]))
    np.testing.assert_allclose(RowWeighting("confidence", alpha=2.0).transform(matrix).data, [7.0, 3.0])
    with pytest.raises(EngineError, match="weighting must be one of"):
        algorithm_build("ease", weighting="sqrt")


# --------------------------------------------------------------------------- ALS / BPR
def test_als_fold_in_matches_trained_user_factors() -> None:
    matrix = random_matrix(users=60, items=20, seed=3)
    model = algorithm_build("als", factors=4, regularization=0.1, iterations=50, use_cg=False, num_threads=1).fit(
        matrix
    )
    folded = model.user_vectors(matrix)
    # the trained user factors are the last ALS user step (items moved once after it)
    trained_scores = model.user_factors @ model.item_factors.T
    folded_scores = folded @ model.item_factors.T
    assert np.abs(folded_scores - trained_scores).max() < 0.05 * np.abs(trained_scores).max()
    np.testing.assert_allclose(model.score(matrix), folded_scores, rtol=1e-5, atol=1e-6)


def test_early_stopping_top_k_equals_scoring_every_item():
    """ALS's ``top_k`` (items by decreasing norm, stop when no item left can beat
    the k-th best) picks exactly what scoring the whole catalogue picks —
    with exclusions, an allowed mask, and fewer allowed items than asked for."""
    rng = np.random.default_rng(3)
    n_users, n_items = 1500, 30_000  # several blocks of the scan
    popularity = rng.zipf(1.6, n_items).astype(np.float64)
    popularity /= popularity.sum()
    rows = np.repeat(np.arange(n_users), 25)
    cols = rng.choice(n_items, rows.size, p=popularity)
    matrix = sp.csr_matrix((np.ones(rows.size, np.float32), (rows, cols)), shape=(n_users, n_items))
    matrix.sum_duplicates()
    model = algorithm_build("als", factors=16, iterations=4, random_state=1).fit(matrix)
    few = np.zeros(n_items, bool)
    few[rng.choice(n_items, 25, replace=False)] = True
    masks = [None, rng.random(n_items) < 0.2, few]
    for user in range(60):
        history = (
            matrix[user]
            if user % 3
            else sp.csr_matrix(  # also brand-new histories of rare items
                (np.ones(3, np.float32), (np.zeros(3, int), rng.choice(n_items, 3))), shape=(1, n_items)
            )
        )
        exclude = rng.choice(n_items, 50, replace=False)
        for allowed in masks:
            scores = model.score(history)[0]
            scores[exclude] = -np.inf
            if allowed is not None:
                scores[~allowed] = -np.inf
            want_ids, want_scores = top_n(scores[None, :], 40)
            valid = want_ids[0] >= 0
            # small first blocks: many chances to stop, each one checked
            got_ids, got_scores = model.top_k(history, 40, exclude=exclude, allowed=allowed, block=64)
            np.testing.assert_allclose(got_scores, want_scores[0][valid], rtol=1e-5, atol=1e-7)
            # the same items, but for ties at the cut-off (either may make the list)
            above = want_scores[0][valid] > want_scores[0][valid][-1] + 1e-6
            np.testing.assert_array_equal(got_ids[above], want_ids[0][valid][above])
            assert not set(got_ids.tolist()) & set(exclude.tolist())
            if allowed is not None:
                assert allowed[got_ids].all()
            if allowed is few:  # fewer allowed than asked for: all of them, less the excluded
                assert got_ids.size == int(few.sum()) - int(few[exclude].sum())


def _scan_model_and_rows(*, tight: bool = False):
    """An ALS model on a power-law catalogue (several blocks of the scan) and 120
    rows: training users and brand-new histories of rare items. ``tight``: the item
    factors replaced by random 3-d ones, so that many items score close to the bound
    ``|u| |y|`` (a scan that stops a little early misses some)."""
    rng = np.random.default_rng(11)
    n_users, n_items = 1200, 30_000
    popularity = rng.zipf(1.6, n_items).astype(np.float64)
    popularity /= popularity.sum()
    rows = np.repeat(np.arange(n_users), 25)
    cols = rng.choice(n_items, rows.size, p=popularity)
    matrix = sp.csr_matrix((np.ones(rows.size, np.float32), (rows, cols)), shape=(n_users, n_items))
    matrix.sum_duplicates()
    model = algorithm_build("als", factors=16, iterations=4, random_state=1).fit(matrix)
    rare = sp.csr_matrix(
        (np.ones(3 * 40, np.float32), (np.repeat(np.arange(40), 3), rng.choice(n_items, 3 * 40))),
        shape=(40, n_items),
    )
    history = sp.vstack([matrix[:80], rare]).tocsr()
    if tight:
        factors = rng.standard_normal((n_items, 3)) * rng.lognormal(0.0, 0.5, n_items)[:, None]
        model._set_item_factors(factors.astype(np.float32))
    return model, history, rng


def _batch_mismatches(model, history, exclude, allowed, k, block) -> int:
    """How many rows of the batch scan (first block ``block`` items wide) differ from
    ranking every item (scores, or items above the k-th best score)."""
    want_ids, want_scores = model.recommend(history, n=k, exclude=exclude, exclude_history=False, allowed=allowed)
    matrix = model.check_history(history)
    got_ids, got_scores = model._top_k_batch(matrix, k, sp.csr_matrix(exclude), allowed, block=block)
    bad = 0
    for row in range(matrix.shape[0]):
        valid = want_ids[row] >= 0
        kth = want_scores[row][valid][-1] if valid.any() else np.inf
        above = want_scores[row] > kth + 1e-6
        if (
            not np.allclose(got_scores[row], want_scores[row], rtol=1e-5, atol=1e-7, equal_nan=False)
            or not np.array_equal(got_ids[row] >= 0, valid)
            or not np.array_equal(got_ids[row][above], want_ids[row][above])
        ):
            bad += 1
    return bad


def test_batch_early_stopping_top_k_equals_scoring_every_item():
    """ALS's ``top_k_batch`` (every row's threshold from the largest-norm block, then
    only the rows that can still improve, block by block) picks exactly what scoring
    the whole catalogue picks -- with exclusions per row, an allowed mask, and fewer
    allowed items than asked for -- whatever the width of the first block."""
    for tight in (False, True):
        _check_batch_scan(*_scan_model_and_rows(tight=tight))


def _check_batch_scan(model, history, rng) -> None:
    rows, n_items = history.shape
    ex_rows = np.repeat(np.arange(rows), 50)
    exclude = sp.csr_matrix(
        (np.ones(ex_rows.size, np.float32), (ex_rows, rng.choice(n_items, ex_rows.size))), shape=(rows, n_items)
    )
    few = np.zeros(n_items, bool)
    few[rng.choice(n_items, 25, replace=False)] = True
    for allowed in (None, rng.random(n_items) < 0.2, few):
        for block in (16, 64, 1024):
            assert _batch_mismatches(model, history, exclude, allowed, 40, block) == 0, (block, allowed is None)
        ids, scores = model.top_k_batch(history, 40, exclude=exclude, allowed=allowed)  # the public path
        valid = ids >= 0
        for row in range(rows):
            assert not set(ids[row][valid[row]].tolist()) & set(exclude[row].indices.tolist())
        if allowed is not None:
            assert allowed[ids[valid]].all()
        if allowed is few:  # fewer allowed than asked for: all of them, less the excluded
            for row in range(rows):
                left = few.copy()
                left[exclude[row].indices] = False
                assert set(ids[row][valid[row]].tolist()) == set(np.flatnonzero(left).tolist())
                assert np.all(np.isneginf(scores[row][~valid[row]]))
    assert model.top_k_batch(history, 0)[0].shape == (rows, 0)


def test_batch_scan_exactness_check_catches_a_wrong_bound(monkeypatch):
    """The check above is sharp enough: with the bound made wrong (item norms
    understated, so rows stop while an item left could still beat their k-th best)
    the picks differ from scoring every item."""
    model, history, _ = _scan_model_and_rows(tight=True)
    exclude = sp.csr_matrix(history.shape, dtype=np.float32)
    assert _batch_mismatches(model, history, exclude, None, 40, 16) == 0
    by_norm, norms, factors_t, position = model._norm_order()
    monkeypatch.setattr(model, "_norm_order", lambda: (by_norm, norms * 0.95, factors_t, position))
    assert _batch_mismatches(model, history, exclude, None, 40, 16) > 0


def test_als_runs_with_blas_limited_and_restores_it() -> None:
    def blas_threads() -> list[int]:
        return [p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"]

    before = blas_threads()
    with blas_single_thread():
        assert all(n == 1 for n in blas_threads())
    assert blas_threads() == before
    import implicit.utils

    implicit.utils._checked_blas_config = False  # implicit checks (and warns) once
    with NoBlasWarning():
        algorithm_build("als", factors=2, iterations=2).fit(groups_matrix())
    assert implicit.utils._checked_blas_config
    assert blas_threads() == before


class NoBlasWarning:
    """Context manager failing if implicit warns about a multi-threaded BLAS."""

    def __enter__(self):
        import warnings

        self._catcher = warnings.catch_warnings(record=True)
        self._records = self._catcher.__enter__()
        warnings.simplefilter("always")
        return self

    def __exit__(self, *exc):
        self._catcher.__exit__(*exc)
        assert not [r for r in self._records if "threads" in str(r.message)]
        return False


def test_bpr_folds_in_training_users_close_to_their_trained_ranking() -> None:
    matrix = groups_matrix()
    model = algorithm_build("bpr", factors=4, iterations=300, learning_rate=0.05, num_threads=1).fit(matrix)
    trained = model.user_factors @ model.item_factors.T + model.item_bias
    trained[matrix.nonzero()] = -np.inf
    folded_top = model.recommend(matrix, n=1)[0][:, 0]
    np.testing.assert_array_equal(folded_top, trained.argmax(axis=1))


# --------------------------------------------------------------------------- SVD
def test_svd_reconstructs_training_rows() -> None:
    matrix = random_matrix(users=30, items=12, seed=1)
    model = algorithm_build("svd", factors=3, weighting="none").fit(matrix)
    u, s, vt = np.linalg.svd(matrix.toarray().astype(np.float64), full_matrices=False)
    reconstruction = (u[:, :3] * s[:3]) @ vt[:3]
    np.testing.assert_allclose(model.score(matrix), reconstruction, rtol=1e-4, atol=1e-4)


def test_svd_uses_svds_on_larger_matrices_and_is_reproducible() -> None:
    matrix = random_matrix(users=200, items=120, density=0.05, seed=2)
    first = algorithm_build("svd", factors=8).fit(matrix).score(matrix[:5])
    second = algorithm_build("svd", factors=8).fit(matrix).score(matrix[:5])
    np.testing.assert_allclose(first, second, rtol=1e-5, atol=1e-6)
    u, s, vt = np.linalg.svd(matrix.toarray().astype(np.float64), full_matrices=False)
    np.testing.assert_allclose(first, (u[:5, :8] * s[:8]) @ vt[:8], atol=1e-3)


# --------------------------------------------------------------------------- content
def test_content_similarity_profiles_and_interests() -> None:
    side = groups_side()
    model = algorithm_build("content").fit(groups_matrix(), side)
    ids, scores = model.similar_items([0], n=4)
    assert set(ids[0].tolist()) == {1, 2, 3, 4} and np.all(scores > 0.5)
    by_text = model.score_text(["a ceramic mug for the kitchen"])
    assert by_text[0, 5:].min() > by_text[0, :5].max()
    by_category = model.score_categories([[1], [2, 99], []])
    assert by_category[0, :5].min() > by_category[0, 5:].max()
    assert by_category[1, 5:].min() > by_category[1, :5].max()
    assert np.all(by_category[2] == 0)  # no known interest: no signal


def test_content_needs_side_text_or_categories() -> None:
    with pytest.raises(EngineError, match="side"):
        algorithm_build("content").fit(groups_matrix(), SideData(item_recent=np.ones(10)))
    categories_only = algorithm_build("content").fit(
        groups_matrix(), SideData(item_category=np.array([1] * 5 + [-1] * 5))
    )
    assert categories_only.similar_items([0], n=9)[0][0].tolist()[:4] == [1, 2, 3, 4]
    assert categories_only.similar_items([7], n=3)[0][0].tolist() == [-1, -1, -1]


def test_side_data_is_validated() -> None:
    with pytest.raises(EngineError, match="item_text has 2 entries for 10 items"):
        algorithm_build("content").fit(groups_matrix(), SideData(item_text=["a", "b"]))
    with pytest.raises(EngineError, match="item_recent contains NaN"):
        algorithm_build("trending").fit(groups_matrix(), SideData(item_recent=np.full(10, np.nan)))


# --------------------------------------------------------------------------- registry
def test_algorithm_build_names_unknown_algorithms_and_bad_values() -> None:
    with pytest.raises(EngineError, match="unknown algorithm 'slim'"):
        algorithm_build("slim")
    with pytest.raises(EngineError, match="'lam' must be a number"):
        algorithm_build("ease", lam="big")
    with pytest.raises(EngineError, match="lam must be > 0"):
        algorithm_build("ease", lam=-1)
    with pytest.raises(EngineError, match="'k' must be an integer"):
        algorithm_build("item_knn", k=2.5)
    assert algorithm_build("item_knn", k=20.0).get_params()["k"] == 20


def test_load_rejects_what_is_not_a_model_artifact(tmp_path) -> None:
    import io

    from recommendations.engine import load

    with pytest.raises(EngineError, match="cannot read model artifact"):
        load(io.BytesIO(b"certainly not a zip file"))
    npy = io.BytesIO()
    np.save(npy, np.arange(3))
    npy.seek(0)
    with pytest.raises(EngineError, match="expected an .npz"):
        load(npy)
    pickled = io.BytesIO()
    np.savez(pickled, algorithm=np.array("ease"), params=np.array([{"lam": 1}], dtype=object))
    pickled.seek(0)
    with pytest.raises(EngineError, match="cannot read model artifact"):
        load(pickled)
    other = io.BytesIO()
    np.savez(other, algorithm=np.array("slim"))
    other.seek(0)
    with pytest.raises(EngineError, match="unknown algorithm 'slim'"):
        load(other)


@pytest.mark.parametrize(
    ("algorithm", "params", "message"),
    [
        ("als", {"factors": 10**9}, "factors must be between 1 and 1024, got 1000000000"),
        ("als", {"iterations": 100_000}, "iterations must be between 1 and 1000"),
        ("als", {"num_threads": 10**6}, "num_threads must be between 0 and 1024"),
        ("bpr", {"factors": 2048}, "factors must be between 1 and 1024"),
        ("bpr", {"iterations": 5000}, "iterations must be between 1 and 1000"),
        ("bpr", {"learning_rate": 100.0}, "learning_rate must be between 0 and 10"),
        ("svd", {"factors": 1025}, "factors must be between 1 and 1024"),
        ("item_knn", {"k": 5001}, "k must be between 1 and 5000"),
        ("item_knn_bm25", {"k": 10**6}, "k must be between 1 and 5000"),
        ("ease", {"lam": 1e12}, "lam must be between 0 and 1000000000.0"),
        ("ease", {"max_items": 10**6}, "max_items must be between 1 and 100000"),
        ("ease", {"top_k": 10**6}, "top_k must be between 0 and 5000"),
        ("content", {"max_features": 10**7}, "max_features must be between 1 and 1000000"),
        ("hybrid", {"cold_neighbours": 10**6}, "cold_neighbours must be between 0 and 1000"),
        ("hybrid", {"cf": "als", "cf_params": {"factors": 10**9}}, "hybrid: als: factors must be between 1 and 1024"),
    ],
)
def test_parameters_above_their_upper_bound_are_refused(algorithm: str, params: dict, message: str) -> None:
    with pytest.raises(EngineError) as refused:
        algorithm_build(algorithm, **params)
    assert str(refused.value).startswith(f"{algorithm}: ") and message in str(refused.value)
    assert algorithm_build(algorithm).get_params()  # the defaults stay within the bounds
