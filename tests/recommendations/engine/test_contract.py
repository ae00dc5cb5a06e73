"""The contract every algorithm passes: one mixin, one subclass per algorithm.

The tiny matrices (``conftest.py``) have a right answer known by hand: with the
history excluded, each user's single best recommendation is the one item of its
group (or checkerboard colour) it has not bought yet.
"""

from __future__ import annotations

import io
import json
from typing import Any, ClassVar

import numpy as np
import pytest
import scipy.sparse as sp

from recommendations.engine import (
    ALGORITHMS,
    EmptyDataError,
    EngineError,
    NotFittedError,
    Recommender,
    SideData,
    UnknownIdError,
    algorithm_build,
    load,
)

from .conftest import (
    checkerboard_answer,
    checkerboard_matrix,
    checkerboard_side,
    groups_answer,
    groups_matrix,
    groups_side,
)


class RecommenderContract:
    """Mixin: subclasses set ``name`` and ``params`` (suited to 10-item matrices)."""

    name: ClassVar[str]
    params: ClassVar[dict[str, Any]] = {}
    personalised: ClassVar[bool] = True
    needs_side: ClassVar[bool] = False

    # ------------------------------------------------------------ helpers
    def make(self) -> Recommender:
        return algorithm_build(self.name, **self.params)

    def fitted(self, matrix: sp.csr_matrix | None = None, side: SideData | None = None):
        matrix = groups_matrix() if matrix is None else matrix
        side = groups_side() if side is None else side
        return self.make().fit(matrix, side)

    # ------------------------------------------------------------ registry / params
    def test_registered_under_its_name(self) -> None:
        model = self.make()
        assert ALGORITHMS[self.name] is type(model)
        assert model.name == self.name

    def test_params_are_json_and_rebuild_the_same_model(self) -> None:
        params = self.make().get_params()
        assert json.loads(json.dumps(params)) == params
        assert algorithm_build(self.name, **params).get_params() == params

    def test_unknown_parameter_is_named(self) -> None:
        with pytest.raises(EngineError, match="no_such_param"):
            algorithm_build(self.name, no_such_param=1)

    # ------------------------------------------------------------ right answers
    def test_groups_top1_is_the_missing_group_item(self) -> None:
        if not self.personalised:
            pytest.skip("non-personalised baseline")
        model = self.fitted(groups_matrix(), groups_side())
        ids, scores = model.recommend(groups_matrix(), n=1)
        np.testing.assert_array_equal(ids[:, 0], groups_answer())
        assert np.all(np.isfinite(scores))

    def test_groups_top5_stay_in_the_group(self) -> None:
        if not self.personalised:
            pytest.skip("non-personalised baseline")
        model = self.fitted(groups_matrix(), groups_side())
        ids, _ = model.recommend(groups_matrix(), n=1, exclude_history=False)
        scores = model.score(groups_matrix())
        for user in range(12):
            own = slice(0, 5) if user < 6 else slice(5, 10)
            other = slice(5, 10) if user < 6 else slice(0, 5)
            assert scores[user, own].min() > scores[user, other].max(), user

    def test_checkerboard_top1_is_the_missing_same_colour_item(self) -> None:
        if not self.personalised:
            pytest.skip("non-personalised baseline")
        model = self.fitted(checkerboard_matrix(), checkerboard_side())
        ids, _ = model.recommend(checkerboard_matrix(), n=1)
        np.testing.assert_array_equal(ids[:, 0], checkerboard_answer())

    def test_new_user_is_folded_in(self) -> None:
        """A shopper unknown at training time with two group-B items gets group B."""
        if not self.personalised:
            pytest.skip("non-personalised baseline")
        model = self.fitted()
        history = sp.csr_matrix((np.ones(2, np.float32), ([0, 0], [6, 8])), shape=(1, 10))
        ids, _ = model.recommend(history, n=3)
        assert set(ids[0].tolist()) == {5, 7, 9}

    def test_similar_items_stay_in_the_group(self) -> None:
        if not self.personalised:
            pytest.skip("non-personalised baseline")
        model = self.fitted()
        ids, scores = model.similar_items(np.array([0, 7]), n=2)
        assert ids.shape == (2, 2) and scores.dtype == np.float32
        assert set(ids[0].tolist()) <= {1, 2, 3, 4}
        assert set(ids[1].tolist()) <= {5, 6, 8, 9}

    # ------------------------------------------------------------ shapes and filters
    def test_score_shape_and_dtype(self) -> None:
        model = self.fitted()
        scores = model.score(groups_matrix())
        assert scores.shape == (12, 10) and scores.dtype == np.float32
        assert np.all(np.isfinite(scores))

    def test_single_row_equals_batch_row(self) -> None:
        """Scoring is per row: one history alone scores as it does in a batch."""
        model = self.fitted()
        matrix = groups_matrix()
        batch = model.score(matrix)
        for user in (0, 7, 11):
            np.testing.assert_allclose(model.score(matrix[user]), batch[user : user + 1], rtol=1e-5, atol=1e-6)

    def test_empty_history_is_served(self) -> None:
        model = self.fitted()
        empty = sp.csr_matrix((2, 10), dtype=np.float32)
        ids, scores = model.recommend(empty, n=3)
        assert ids.shape == (2, 3)
        assert np.all(np.isfinite(model.score(empty)))

    def test_padding_exclusions_and_allowed_mask(self) -> None:
        model = self.fitted()
        history = groups_matrix()[:1]  # items 1-4
        ids, scores = model.recommend(history, n=12)
        assert ids.shape == (1, 12)
        assert set(ids[0, :6].tolist()) == {0, 5, 6, 7, 8, 9}
        assert np.all(ids[0, 6:] == -1) and np.all(np.isneginf(scores[0, 6:]))
        assert np.all(np.diff(scores[0, :6]) <= 0)
        allowed = np.zeros(10, dtype=bool)
        allowed[[3, 5, 9]] = True
        ids, _ = model.recommend(history, n=5, allowed=allowed)
        assert set(ids[0].tolist()) == {5, 9, -1}
        exclude = sp.csr_matrix((np.ones(1, np.float32), ([0], [5])), shape=(1, 10))
        ids, _ = model.recommend(history, n=10, exclude=exclude, exclude_history=False)
        assert 5 not in ids[0] and {1, 2, 3, 4} <= set(ids[0].tolist())

    # ------------------------------------------------------------ fold-in and top-k (serving's interface)
    def test_user_and_item_vectors_score_like_score(self) -> None:
        """Explanations fold histories in once and score only a few columns."""
        model = self.fitted()
        history = sp.vstack(
            [groups_matrix()[[0, 7]], sp.csr_matrix((np.array([3.0], np.float32), ([0], [4])), shape=(1, 10))]
        ).tocsr()  # and a one-item row
        columns = np.array([3, 0, 9, 0])
        got = model.user_vectors(history) @ model.item_vectors(columns).T
        np.testing.assert_allclose(got, model.score(history)[:, columns], rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(model.fold_in(model.check_history(history)), model.user_vectors(history))
        with pytest.raises(EngineError, match="item columns"):
            model.user_vectors(sp.csr_matrix((1, 11), dtype=np.float32))

    def test_top_k_equals_recommend_with_exclusions(self) -> None:
        model = self.fitted()
        history = groups_matrix()[:1]  # items 1-4
        exclude = np.array([1, 2, 3, 4, 5])
        allowed = np.ones(10, dtype=bool)
        allowed[9] = False
        ids, scores = model.recommend(
            history,
            n=10,
            exclude=sp.csr_matrix((np.ones(5, np.float32), (np.zeros(5, int), exclude)), shape=(1, 10)),
            exclude_history=False,
            allowed=allowed,
        )
        cols, values = model.top_k(history, 10, exclude=exclude, allowed=allowed)
        valid = ids[0] >= 0
        assert cols.size == int(valid.sum()) == 4  # 0, 6, 7, 8
        np.testing.assert_allclose(values, scores[0][valid], rtol=1e-5, atol=1e-6)
        assert set(cols.tolist()) == set(ids[0][valid].tolist()) == {0, 6, 7, 8}
        assert np.all(np.diff(values) <= 0)
        assert model.top_k(history, 0)[0].size == 0
        with pytest.raises(EngineError, match="one history row"):
            model.top_k(groups_matrix()[:2], 3)

    def test_top_k_batch_equals_top_k_and_dense_ranking(self) -> None:
        """The batch top-k (exports, campaigns) picks per row what the one-row
        ``top_k`` and ranking every item pick, with per-row exclusions and a mask."""
        model = self.fitted()
        history = sp.vstack(
            [groups_matrix(), sp.csr_matrix((np.array([2.0], np.float32), ([0], [7])), shape=(1, 10))]
        ).tocsr()  # and a one-item row
        rows = history.shape[0]
        rng = np.random.default_rng(5)
        ex_rows = np.repeat(np.arange(rows), 2)
        ex_cols = rng.choice(10, ex_rows.size)
        exclude = sp.csr_matrix((np.ones(ex_rows.size, np.float32), (ex_rows, ex_cols)), shape=(rows, 10))
        allowed = np.ones(10, dtype=bool)
        allowed[[2, 9]] = False
        for k, mask in ((3, None), (10, allowed), (12, None), (0, None)):
            ids, scores = model.top_k_batch(history, k, exclude=exclude, allowed=mask)
            assert ids.shape == scores.shape == (rows, k)
            assert ids.dtype == np.int64 and scores.dtype == np.float32
            want_ids, want_scores = model.recommend(history, n=k, exclude=exclude, exclude_history=False, allowed=mask)
            np.testing.assert_allclose(scores, want_scores, rtol=1e-5, atol=1e-6)
            for row in range(rows):
                cols, values = model.top_k(history[row], k, exclude=exclude[row].indices, allowed=mask)
                valid = ids[row] >= 0
                assert np.all(ids[row][~valid] == -1) and np.all(np.isneginf(scores[row][~valid]))
                np.testing.assert_allclose(scores[row][valid], values, rtol=1e-5, atol=1e-6)
                # the same items, but for ties at the cut-off (either may make the list)
                if values.size:
                    above = values > values[-1] + 1e-6
                    np.testing.assert_array_equal(ids[row][valid][above], cols[above])
                assert not set(ids[row][valid].tolist()) & set(exclude[row].indices.tolist())
                if mask is not None:
                    assert mask[ids[row][valid]].all()
        with pytest.raises(EngineError, match="exclude has shape"):
            model.top_k_batch(history, 3, exclude=exclude[:2])
        with pytest.raises(EngineError, match="allowed"):
            model.top_k_batch(history, 3, allowed=np.ones(9, dtype=bool))
        with pytest.raises(EngineError, match="non-negative"):
            model.top_k_batch(history, -1)

    # ------------------------------------------------------------ persistence
    def test_save_load_round_trip_gives_identical_scores(self, tmp_path) -> None:
        model = self.fitted()
        matrix = groups_matrix()
        buffer = io.BytesIO()
        model.save(buffer)
        buffer.seek(0)
        again = load(buffer)
        assert type(again) is type(model) and again.get_params() == model.get_params()
        np.testing.assert_array_equal(again.score(matrix), model.score(matrix))
        np.testing.assert_array_equal(again.similar_items([0, 7], n=3)[0], model.similar_items([0, 7], n=3)[0])
        path = tmp_path / "model.npz"
        model.save(str(path), compress=False)
        np.testing.assert_array_equal(load(str(path)).score(matrix), model.score(matrix))

    def test_artifact_needs_no_pickle(self) -> None:
        buffer = io.BytesIO()
        self.fitted().save(buffer)
        buffer.seek(0)
        with np.load(buffer, allow_pickle=False) as archive:
            assert str(archive["algorithm"]) == self.name
            for key in archive.files:
                assert archive[key].dtype != object

    # ------------------------------------------------------------ errors
    def test_empty_matrix_is_rejected(self) -> None:
        empty = sp.csr_matrix((3, 10), dtype=np.float32)
        if self.needs_side:
            self.make().fit(empty, groups_side())  # content needs no interactions
            with pytest.raises(EngineError, match="side"):
                self.make().fit(empty, None)
        else:
            with pytest.raises(EmptyDataError):
                self.make().fit(empty, groups_side())
        with pytest.raises(EmptyDataError):
            self.make().fit(sp.csr_matrix((3, 0), dtype=np.float32), None)

    def test_nan_values_are_rejected(self) -> None:
        matrix = groups_matrix()
        matrix.data[3] = np.nan
        with pytest.raises(EngineError, match="NaN"):
            self.make().fit(matrix, groups_side())
        model = self.fitted()
        history = groups_matrix()[:1]
        history.data[0] = np.inf
        with pytest.raises(EngineError, match="NaN"):
            model.score(history)

    def test_wrong_width_history_and_unknown_items(self) -> None:
        model = self.fitted()
        with pytest.raises(EngineError, match="10"):
            model.score(sp.csr_matrix((1, 11), dtype=np.float32))
        with pytest.raises(UnknownIdError):
            model.similar_items(np.array([-1]))
        with pytest.raises(UnknownIdError):
            model.similar_items(np.array([10]))

    def test_use_before_fit(self) -> None:
        with pytest.raises(NotFittedError):
            self.make().score(sp.csr_matrix((1, 10), dtype=np.float32))

    def test_progress_is_reported(self) -> None:
        seen: list[float] = []
        self.make().fit(groups_matrix(), groups_side(), progress=seen.append)
        assert seen and seen[-1] == 1.0
        assert all(0.0 <= value <= 1.0 for value in seen)
        assert seen == sorted(seen)


class TestPopularity(RecommenderContract):
    name = "popularity"
    personalised = False

    def test_ranks_by_distinct_users(self) -> None:
        matrix = sp.csr_matrix(np.array([[1, 0, 9], [1, 1, 0], [1, 0, 0]], np.float32))
        model = algorithm_build("popularity").fit(matrix)
        ids, scores = model.recommend(sp.csr_matrix((1, 3), dtype=np.float32), n=3)
        assert ids[0].tolist() == [0, 1, 2]  # 3 users, then a tie of 1 user (index order)
        np.testing.assert_allclose(scores[0], [1.0, 1 / 3, 1 / 3])
        weighted = algorithm_build("popularity", count="weight").fit(matrix)
        assert weighted.recommend(sp.csr_matrix((1, 3), dtype=np.float32), n=1)[0][0, 0] == 2


class TestTrending(RecommenderContract):
    name = "trending"
    personalised = False

    def test_follows_recent_popularity(self) -> None:
        model = algorithm_build("trending", smoothing=0.0).fit(groups_matrix(), groups_side())
        ids, _ = model.recommend(sp.csr_matrix((1, 10), dtype=np.float32), n=3)
        assert ids[0].tolist() == [5, 6, 7]

    def test_without_side_uses_matrix_weights(self) -> None:
        matrix = sp.csr_matrix(np.array([[0.1, 3.0], [0.1, 0.0]], np.float32))
        model = algorithm_build("trending", smoothing=0.0).fit(matrix)
        assert model.recommend(sp.csr_matrix((1, 2), dtype=np.float32), n=1)[0][0, 0] == 1


class TestItemKNN(RecommenderContract):
    name = "item_knn"
    params = {"k": 5}


class TestItemKNNBM25(RecommenderContract):
    name = "item_knn_bm25"
    params = {"k": 5}


class TestContent(RecommenderContract):
    name = "content"
    needs_side = True


class TestALS(RecommenderContract):
    name = "als"
    params = {"factors": 2, "regularization": 0.1, "iterations": 30, "num_threads": 1}


class TestBPR(RecommenderContract):
    name = "bpr"
    params = {"factors": 4, "iterations": 300, "learning_rate": 0.05, "num_threads": 1}


class TestSVD(RecommenderContract):
    name = "svd"
    params = {"factors": 2}


class TestEASE(RecommenderContract):
    name = "ease"
    params = {"lam": 1.0}


class TestHybrid(RecommenderContract):
    name = "hybrid"
    params = {"cf": "ease", "cf_params": {"lam": 1.0}, "w_trending": 0.05}
