"""Synthetic stores with real latent structure, one per shape of data (bench/byod.py).

Every customer has a taste (a mix of a few of ``topics`` latent topics) and every
product a topic and a popularity (power law); a customer picks products with
probability proportional to popularity x exp(``sharpness`` x affinity), so what they
did says something about what they will do: collaborative models can learn it,
popularity cannot. Shapes:

* ``ratings``  explicit ratings 1-5 (higher for closer products), timestamps spread
  over years long past, no catalogue;
* ``purchases`` purchases only;
* ``views``     view-heavy implicit events (views, some add-to-carts, few purchases of
  viewed products);
* ``single``    one kind (clicks) only;
* ``tiny``      50 customers, purchases.

``events(shape, seed)`` returns rows (customer, product, value, unix seconds, kind).
"""

from __future__ import annotations

import csv
import datetime as dt
from pathlib import Path

import numpy as np

YEAR = 365 * 86_400.0
BASE = dt.datetime(2019, 1, 1, tzinfo=dt.UTC).timestamp()  # "years in the past"

SIZES = {  # customers, products, mean items per customer
    "ratings": (600, 400, 40),
    "purchases": (800, 500, 15),
    "views": (700, 500, 25),
    "single": (700, 500, 20),
    "tiny": (50, 120, 15),
}

Row = tuple[str, str, float, float, str]


def _tastes(rng: np.random.Generator, n_users: int, n_items: int, topics: int):
    item_topic = rng.integers(0, topics, n_items)
    popularity = 1.0 / np.arange(1, n_items + 1) ** 0.7
    rng.shuffle(popularity)
    user_mix = rng.dirichlet(np.full(topics, 0.15), n_users)
    affinity = user_mix[:, item_topic]  # users x items, in [0, 1]
    return affinity, popularity


def _pick(rng: np.random.Generator, weights: np.ndarray, size: int) -> np.ndarray:
    p = weights / weights.sum()
    size = min(size, int((p > 0).sum()))
    return rng.choice(p.size, size=size, replace=False, p=p)


def events(shape: str, seed: int = 0, *, scale: float = 1.0, topics: int = 12, sharpness: float = 6.0) -> list[Row]:
    """The rows of one shape (see the module docstring); ``scale`` multiplies the
    numbers of customers and products (not below 50 and 60)."""
    if shape not in SIZES:
        raise ValueError(f"unknown shape {shape!r}; one of {', '.join(SIZES)}")
    rng = np.random.default_rng(seed)
    n_users, n_items, mean = SIZES[shape]
    n_users, n_items = max(50, round(n_users * scale)), max(60, round(n_items * scale))
    affinity, popularity = _tastes(rng, n_users, n_items, topics)
    rows: list[Row] = []
    for user in range(n_users):
        weights = popularity * np.exp(sharpness * affinity[user])
        count = max(3, int(rng.poisson(mean)))
        items = _pick(rng, weights, count)
        start = BASE + rng.uniform(0, 2 * YEAR)  # each customer is active for a while, years ago
        times = np.sort(start + rng.uniform(0, YEAR, items.size))
        name = f"c{user}"
        if shape == "ratings":
            values = np.clip(np.round(1.5 + 3.5 * affinity[user, items] + rng.normal(0, 0.7, items.size)), 1, 5)
            rows += [(name, f"p{i}", float(v), float(t), "rating") for i, v, t in zip(items, values, times)]
        elif shape == "views":  # products come back over several visits; some go to the cart, few are bought
            for i, t in zip(items, times):
                visits = np.sort(t + rng.exponential(45 * 86_400.0, 1 + int(rng.poisson(1.5))))
                rows += [(name, f"p{i}", 1.0, float(v), "view") for v in visits]
                if rng.random() < 0.25:
                    rows.append((name, f"p{i}", 1.0, float(visits[-1] + 600), "add_to_cart"))
                if rng.random() < 0.1:
                    rows.append((name, f"p{i}", 1.0, float(visits[-1] + 3600), "purchase"))
        else:
            kind = "click" if shape == "single" else "purchase"
            rows += [(name, f"p{i}", 1.0, float(t), kind) for i, t in zip(items, times)]
    return rows


def events_write(path: Path, rows: list[Row]) -> Path:
    """A plain events file: customer,product,value,timestamp,kind (ISO 8601 times)."""
    with open(path, "w", newline="") as handle:
        out = csv.writer(handle)
        out.writerow(["customer", "product", "value", "timestamp", "kind"])
        for customer, product, value, seconds, kind in rows:
            stamp = dt.datetime.fromtimestamp(seconds, tz=dt.UTC).isoformat()
            out.writerow([customer, product, f"{value:g}", stamp, kind])
    return path
