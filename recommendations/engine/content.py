"""Content-based recommendations: TF-IDF over item text plus category features.

Each item gets a feature vector: TF-IDF of its text (name, description, category
text; scikit-learn's tokeniser and English stop words, word n-grams) and a
one-hot of its category id, blended with ``category_weight`` and L2-normalised.

* ``similar_items``: cosine between item vectors.
* ``score(history)``: a user profile — the weighted mean of the vectors of the
  items in the history — compared by cosine with every item.
* ``score_text(texts)`` / ``score_categories(categories)``: a profile built from
  stated interests (free text, category ids) for shoppers with no history yet.

Only the vocabulary, idf values, category ids and item vectors are stored, so the
model needs no pickled scikit-learn object: text is re-vectorised at serving time
with a ``CountVectorizer`` on the stored vocabulary and a ``TfidfTransformer`` given
the stored idf.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import scipy.sparse as sp
from sklearn.feature_extraction.text import CountVectorizer, TfidfTransformer
from sklearn.preprocessing import normalize

from ._arrays import csr_from_state, csr_state, topk_similarity
from .base import Progress, Recommender, SideData
from .errors import EngineError
from .weighting import weighting_from_params

__all__ = ["ContentRecommender"]


class ContentRecommender(Recommender):
    """TF-IDF + category content model (see the module docstring)."""

    name = "content"
    needs_interactions = False
    defaults = {
        "ngram_max": 2,
        "min_df": 1,
        "max_features": 50_000,
        "sublinear_tf": True,
        "stop_words": True,
        "category_weight": 0.3,
        "weighting": "log",
    }

    def _check_params(self) -> None:
        p = self.params
        self._require(p["ngram_max"] in (1, 2, 3), "ngram_max must be 1, 2 or 3")
        self._require_between("min_df", 1, 1_000_000)
        self._require_between("max_features", 1, 1_000_000)
        self._require(0 <= p["category_weight"] <= 1, "category_weight must be in [0, 1]")
        self._weighting = weighting_from_params(p, allowed=("none", "binary", "log"))
        self.terms = np.zeros(0, dtype=str)
        self.idf = np.zeros(0, dtype=np.float32)
        self.categories = np.zeros(0, dtype=np.int64)
        self._fixed_vectorizer: CountVectorizer | None = None
        self._fixed_transformer: TfidfTransformer | None = None

    # ------------------------------------------------------------ features
    def _vectorizer(self, vocabulary: Mapping[str, int] | None = None) -> CountVectorizer:
        p = self.params
        return CountVectorizer(
            lowercase=True,
            stop_words="english" if p["stop_words"] else None,
            ngram_range=(1, p["ngram_max"]),
            min_df=p["min_df"] if vocabulary is None else 1,
            max_features=p["max_features"] if vocabulary is None else None,
            vocabulary=vocabulary,
            dtype=np.float32,
        )

    def _transformer(self) -> TfidfTransformer:
        """scikit-learn's TF-IDF (smooth idf, optional sublinear tf, L2 rows)."""
        return TfidfTransformer(norm="l2", use_idf=True, smooth_idf=True, sublinear_tf=self.params["sublinear_tf"])

    def _text_block(self, texts: Sequence[str]) -> sp.csr_matrix:
        if self.terms.size == 0:
            return sp.csr_matrix((len(texts), 0), dtype=np.float32)
        if self._fixed_vectorizer is None:  # built once per model, from the stored vocabulary and idf
            vocabulary = {term: index for index, term in enumerate(self.terms.tolist())}
            self._fixed_vectorizer = self._vectorizer(vocabulary)
            self._fixed_transformer = self._transformer()
            self._fixed_transformer.idf_ = self.idf
        assert self._fixed_transformer is not None
        counts = self._fixed_vectorizer.transform(list(texts))
        return sp.csr_matrix(self._fixed_transformer.transform(counts), dtype=np.float32)

    def _category_block(self, categories: Sequence[Sequence[int]] | np.ndarray) -> sp.csr_matrix:
        if self.categories.size == 0:  # no item has a category: an empty block, nothing to look up
            return sp.csr_matrix((len(categories), 0), dtype=np.float32)
        rows: list[int] = []
        cols: list[np.ndarray] = []
        for row, ids in enumerate(categories):
            ids = np.atleast_1d(np.asarray(ids, dtype=np.int64))
            position = np.searchsorted(self.categories, ids)
            position = np.minimum(position, max(self.categories.size - 1, 0))
            known = self.categories[position] == ids
            found = np.unique(position[known])
            rows.extend([row] * found.size)
            cols.append(found)
        col = np.concatenate(cols) if cols else np.zeros(0, np.int64)
        block = sp.csr_matrix(
            (np.ones(col.size, np.float32), (np.asarray(rows, np.int64), col)),
            shape=(len(categories), self.categories.size),
        )
        return normalize(block, norm="l2", axis=1)

    def _combine(self, text: sp.csr_matrix, category: sp.csr_matrix) -> sp.csr_matrix:
        weight = self.params["category_weight"] if self.categories.size else 0.0
        if self.terms.size == 0:
            weight = 1.0 if self.categories.size else 0.0
        combined = sp.hstack(
            [text * np.float32(np.sqrt(1.0 - weight)), category * np.float32(np.sqrt(weight))],
            format="csr",
            dtype=np.float32,
        )
        return normalize(combined, norm="l2", axis=1).astype(np.float32)

    # ------------------------------------------------------------ fit / score
    def _fit(self, user_items: sp.csr_matrix, side: SideData | None, progress: Progress) -> None:
        if side is None or not side.has_content:
            raise EngineError("content: needs side data (item names/descriptions and/or categories)")
        self._fixed_vectorizer = None
        self._weighting.fit(user_items)
        if side.item_text is not None:
            vectorizer = self._vectorizer()
            try:
                counts = vectorizer.fit_transform(side.item_text)
            except ValueError as exc:  # empty vocabulary (no usable words at all)
                if side.item_category is None:
                    raise EngineError(f"content: item texts give no features ({exc})") from exc
                counts = None
            if counts is not None:
                vocabulary = vectorizer.vocabulary_
                self.terms = np.array(sorted(vocabulary, key=vocabulary.__getitem__))
                self.idf = self._transformer().fit(counts).idf_.astype(np.float32)
        progress(0.5)
        text = (
            self._text_block(side.item_text)
            if side.item_text is not None
            else sp.csr_matrix((user_items.shape[1], 0), dtype=np.float32)
        )
        if side.item_category is not None:
            category_ids = np.asarray(side.item_category, dtype=np.int64)
            self.categories = np.unique(category_ids[category_ids >= 0])
            category = self._category_block(category_ids[:, None])
        else:
            category = sp.csr_matrix((user_items.shape[1], 0), dtype=np.float32)
        self.item_features = self._combine(text, category)
        if self.item_features.nnz == 0:
            raise EngineError("content: no item has any text or category feature")

    def score_profiles(self, profiles: sp.spmatrix) -> np.ndarray:
        """Cosine of each profile row (in feature space) with every item, float32."""
        profiles = normalize(sp.csr_matrix(profiles, dtype=np.float32), norm="l2", axis=1)
        return np.asarray((profiles @ self.item_features.T).todense(), dtype=np.float32)

    def profile_from_history(self, history: sp.csr_matrix) -> sp.csr_matrix:
        """Weighted sum of the feature vectors of the history's items (not normalised)."""
        return sp.csr_matrix(self._weighting.transform(history) @ self.item_features)

    def profile_from_text(self, texts: Sequence[str]) -> sp.csr_matrix:
        """Feature-space profiles for free-text interests (one row per text)."""
        self._require_fitted()
        text = self._text_block(texts)
        category = sp.csr_matrix((len(texts), self.categories.size), dtype=np.float32)
        return self._combine(text, category)

    def profile_from_categories(self, categories: Sequence[Sequence[int]]) -> sp.csr_matrix:
        """Feature-space profiles for stated category interests (one row per set of ids).

        Categories never seen at fit time are ignored (a row with none is empty).
        """
        self._require_fitted()
        category = self._category_block(categories)
        text = sp.csr_matrix((len(categories), self.terms.size), dtype=np.float32)
        return sp.hstack([text, category], format="csr", dtype=np.float32)

    def score_text(self, texts: Sequence[str]) -> np.ndarray:
        """Scores (len(texts), n_items) for free-text interests."""
        return self.score_profiles(self.profile_from_text(texts))

    def score_categories(self, categories: Sequence[Sequence[int]]) -> np.ndarray:
        """Scores (len(categories), n_items) for stated category interests."""
        return self.score_profiles(self.profile_from_categories(categories))

    def _score(self, history: sp.csr_matrix) -> np.ndarray:
        return self.score_profiles(self.profile_from_history(history))

    def _similar(self, items: np.ndarray) -> np.ndarray:
        return np.asarray((self.item_features[items] @ self.item_features.T).todense())

    def neighbours(self, k: int, *, candidates: np.ndarray | None = None) -> sp.csr_matrix:
        """Items x items CSR: each item's ``k`` most content-similar items.

        ``candidates`` (bool mask) restricts the neighbours to those items; the
        item itself is never its own neighbour.
        """
        features = self.item_features
        right = features.T.tocsc()
        if candidates is not None:
            right = (sp.diags(np.asarray(candidates, dtype=np.float32)) @ features).T.tocsc()
        return topk_similarity(features, right, k, exclude_self=True)

    # ------------------------------------------------------------ persistence
    def _state(self) -> dict[str, np.ndarray]:
        return {
            "terms": np.asarray(self.terms, dtype=str),
            "idf": self.idf,
            "categories": self.categories,
            **csr_state("item_features", self.item_features),
            **self._weighting.state(),
        }

    def _set_state(self, arrays: Mapping[str, np.ndarray]) -> None:
        self.terms = np.asarray(arrays["terms"], dtype=str)
        self._fixed_vectorizer = None
        self.idf = np.asarray(arrays["idf"], dtype=np.float32)
        self.categories = np.asarray(arrays["categories"], dtype=np.int64)
        self.item_features = csr_from_state("item_features", arrays).astype(np.float32)
        self._weighting.set_state(arrays)
