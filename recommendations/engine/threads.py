"""BLAS thread control around ``implicit`` calls.

``implicit`` parallelises ALS/BPR itself (OpenMP, ``num_threads``) and runs many
tiny BLAS calls inside those threads; a multi-threaded OpenBLAS underneath
oversubscribes the cores and can make fitting ~10x slower (``implicit`` warns
about it when a model is constructed). Setting ``OPENBLAS_NUM_THREADS=1`` for the
whole process would slow every other numpy call (EASE's inversion, SVD, ...), so
the engine limits BLAS to one thread only for the duration of ``implicit`` work.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from threadpoolctl import threadpool_limits

__all__ = ["blas_single_thread"]


@contextlib.contextmanager
def blas_single_thread() -> Iterator[None]:
    """Limit BLAS thread pools (OpenBLAS, MKL, BLIS) to one thread inside the block.

    The previous limits are restored on exit, also on error. OpenMP pools (used by
    ``implicit`` itself and scikit-learn) are left untouched.
    """
    with threadpool_limits(limits=1, user_api="blas"):
        yield
