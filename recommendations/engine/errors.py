"""Typed errors raised by the recommendation engine.

Every error is a ``ValueError`` subclass (``EngineError``) so callers that only
know about bad input can catch one type; the subclasses let the app layer map
them to precise messages (400 vs. "not enough data yet", ...).
"""

from __future__ import annotations

__all__ = [
    "EmptyDataError",
    "EngineError",
    "NotFittedError",
    "TooManyItemsError",
    "UnknownIdError",
]


class EngineError(ValueError):
    """Base class: invalid input or state for an engine operation."""


class EmptyDataError(EngineError):
    """There is nothing to learn from (no users, no items or no interactions)."""


class TooManyItemsError(EngineError):
    """The algorithm cannot handle this many items (e.g. EASE's dense item x item matrix)."""


class UnknownIdError(EngineError):
    """An id or index that the matrix/model does not know."""


class NotFittedError(EngineError):
    """A model was used before ``fit`` (or ``load``)."""
