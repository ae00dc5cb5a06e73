"""Affinity's recommendation engine: pure numerics (numpy, scipy, implicit, scikit-learn).

Nothing here imports Django or the project's apps. Importing the package
registers every algorithm in ``ALGORITHMS``:

=================  ==========================================================
``popularity``     all-time popularity (distinct users or total weight)
``trending``       recency-weighted popularity
``item_knn``       item-item cosine neighbours
``item_knn_bm25``  item-item neighbours over BM25-weighted vectors
``content``        TF-IDF + category content model, interest profiles
``als``            implicit-feedback ALS (``implicit``), least-squares fold-in
``bpr``            BPR (``implicit``), ridge fold-in
``svd``            truncated SVD (PureSVD), projection fold-in
``ease``           EASE closed form
``hybrid``         CF + content + trending blend with cold start
=================  ==========================================================
"""

from ._arrays import top_n
from .als import ALSRecommender, BPRRecommender
from .base import (
    ALGORITHMS,
    Recommender,
    SideData,
    algorithm_build,
    check_user_items,
    from_arrays,
    load,
)
from .content import ContentRecommender
from .ease import EASERecommender
from .errors import (
    EmptyDataError,
    EngineError,
    NotFittedError,
    TooManyItemsError,
    UnknownIdError,
)
from .hybrid import HybridRecommender
from .item_knn import ItemKNNBM25Recommender, ItemKNNRecommender
from .matrix import (
    DEFAULT_KIND_WEIGHTS,
    DEFAULT_VALUE_MODES,
    InteractionMatrix,
    Kind,
    event_weights,
    matrix_build,
    recent_popularity,
)
from .popularity import PopularityRecommender, TrendingRecommender
from .selection import DEFAULT_CANDIDATES, SelectionResult, candidates_for, select_model
from .svd import SVDRecommender
from .threads import blas_single_thread

__all__ = [
    "ALGORITHMS",
    "ALSRecommender",
    "BPRRecommender",
    "ContentRecommender",
    "DEFAULT_CANDIDATES",
    "DEFAULT_KIND_WEIGHTS",
    "DEFAULT_VALUE_MODES",
    "EASERecommender",
    "EmptyDataError",
    "EngineError",
    "HybridRecommender",
    "InteractionMatrix",
    "ItemKNNBM25Recommender",
    "ItemKNNRecommender",
    "Kind",
    "NotFittedError",
    "PopularityRecommender",
    "Recommender",
    "SVDRecommender",
    "SelectionResult",
    "SideData",
    "TooManyItemsError",
    "TrendingRecommender",
    "UnknownIdError",
    "algorithm_build",
    "blas_single_thread",
    "candidates_for",
    "check_user_items",
    "event_weights",
    "from_arrays",
    "load",
    "matrix_build",
    "recent_popularity",
    "select_model",
    "top_n",
]
