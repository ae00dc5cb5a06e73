"""Tiny matrices whose right answers are known by hand (no Django anywhere here)."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from recommendations.engine import SideData


def groups_matrix() -> sp.csr_matrix:
    """Two disconnected groups: users 0-5 buy items 0-4, users 6-11 buy items 5-9.

    User ``u`` has every item of its group except ``offset + u % 5``: the one right
    recommendation (after excluding the history) is that missing item.
    """
    dense = np.zeros((12, 10), dtype=np.float32)
    for user in range(12):
        offset = 0 if user < 6 else 5
        dense[user, offset : offset + 5] = 1.0
        dense[user, offset + user % 5] = 0.0
    return sp.csr_matrix(dense)


def groups_answer() -> np.ndarray:
    users = np.arange(12)
    return np.where(users < 6, 0, 5) + users % 5


def checkerboard_matrix() -> sp.csr_matrix:
    """10 x 10 checkerboard: user ``u`` buys items of its own parity, except item ``u``."""
    users, items = np.meshgrid(np.arange(10), np.arange(10), indexing="ij")
    dense = ((users + items) % 2 == 0).astype(np.float32)
    dense[np.arange(10), np.arange(10)] = 0.0
    return sp.csr_matrix(dense)


def checkerboard_answer() -> np.ndarray:
    return np.arange(10)


def groups_side() -> SideData:
    return SideData(
        item_text=[f"red wool winter scarf model {i}" for i in range(5)]
        + [f"blue ceramic kitchen mug model {i}" for i in range(5)],
        item_category=np.array([1] * 5 + [2] * 5),
        item_recent=np.array([0, 0, 0, 0, 1, 5, 4, 3, 2, 1], dtype=np.float32),
    )


def checkerboard_side() -> SideData:
    texts = ["woollen winter hat" if i % 2 == 0 else "linen summer dress" for i in range(10)]
    return SideData(
        item_text=texts,
        item_category=np.array([i % 2 for i in range(10)]),
        item_recent=np.arange(10, dtype=np.float32),
    )


@pytest.fixture
def groups() -> sp.csr_matrix:
    return groups_matrix()


@pytest.fixture
def checkerboard() -> sp.csr_matrix:
    return checkerboard_matrix()
