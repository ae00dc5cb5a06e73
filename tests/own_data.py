"""Stores that are not the demo store, as files a shop would bring: events (and, for
some shapes, a catalogue) with real structure, plus what each customer did next
(held out of the files) to judge the recommendations on.

Customers belong to one of a few taste groups; each product belongs to one group. A
customer's events fall mostly on their group's products, more often on the popular
ones, so a collaborative model can find what popularity alone cannot. The held-out
products are further products of the customer's own group that the files do not show.
"""

from __future__ import annotations

import csv
import json
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np


@dataclass
class Shape:
    name: str
    events: Path
    catalogue: Path | None
    customers: list[str]
    held_out: dict[str, set[str]]
    consumed: dict[str, set[str]]  # products each customer bought or rated in the file
    popular: list[str] = field(default_factory=list)  # most frequent products in the file first


def _write_csv(path: Path, header: list[str], rows: list[list]) -> None:
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        writer.writerows(rows)


def make_shape(
    directory: Path,
    name: str,
    *,
    customers: int = 120,
    products: int = 90,
    groups: int = 4,
    per_customer: int = 14,
    held_out: int = 3,
    kinds: tuple[str, ...] = ("purchase",),
    kind_weights: tuple[float, ...] = (1.0,),
    start: datetime = datetime(2024, 1, 1, tzinfo=UTC),
    days: int = 300,
    catalogue: str | None = None,  # None, "full" (names, text, categories, prices) or "names"
    seed: int = 7,
) -> Shape:
    """Write ``<name>-events.csv`` (customer,product,value,timestamp,kind) and, when
    asked, ``<name>-catalogue.csv`` under ``directory``."""
    rng = np.random.default_rng(seed)
    group_of_product = np.arange(products) % groups
    popularity = rng.pareto(1.2, size=products) + 1.0
    skus = [f"SKU-{name[:3].upper()}-{i:04d}" for i in range(products)]
    rows: list[list] = []
    held: dict[str, set[str]] = {}
    consumed: dict[str, set[str]] = {}
    names = [f"C{i:04d}" for i in range(customers)]
    for c, customer in enumerate(names):
        group = c % groups
        own = np.flatnonzero(group_of_product == group)
        weights = popularity[own] / popularity[own].sum()
        take = min(per_customer + held_out, own.size)
        chosen = rng.choice(own, size=take, replace=False, p=weights)
        shown, hidden = chosen[: take - held_out], chosen[take - held_out :]
        # a little noise outside the group: real customers are not pure
        others = np.flatnonzero(group_of_product != group)
        noise = rng.choice(others, size=max(1, per_customer // 7), replace=False)
        held[customer] = {skus[i] for i in hidden}
        when = start + timedelta(days=float(rng.uniform(0, days)))
        for item in list(shown) + list(noise):
            kind = str(rng.choice(kinds, p=np.asarray(kind_weights) / sum(kind_weights)))
            in_group = group_of_product[item] == group
            if kind == "rating":
                value = float(rng.choice([4, 5]) if in_group else rng.choice([1, 2]))
            elif kind == "purchase":
                value = float(rng.integers(1, 4))
            else:
                value = 1.0
            if kind in ("purchase", "rating"):
                consumed.setdefault(customer, set()).add(skus[item])
            when += timedelta(hours=float(rng.uniform(1, 72)))
            rows.append([customer, skus[item], value, when.strftime("%Y-%m-%dT%H:%M:%SZ"), kind])
    events = directory / f"{name}-events.csv"
    _write_csv(events, ["customer", "product", "value", "timestamp", "kind"], rows)
    counts = Counter(r[1] for r in rows)
    shape = Shape(
        name=name,
        events=events,
        catalogue=None,
        customers=names,
        held_out=held,
        consumed=consumed,
        popular=[sku for sku, _ in counts.most_common()],
    )
    if catalogue:
        path = directory / f"{name}-catalogue.csv"
        group_names = ["Kitchen > Storage", "Kitchen > Baking", "Garden > Tools", "Home > Lights", "Toys"]
        cat_rows = []
        for i, sku in enumerate(skus):
            category = group_names[group_of_product[i] % len(group_names)]
            if catalogue == "names":
                cat_rows.append([sku, f"{category.split(' > ')[-1]} item {i}", category])
            else:
                cat_rows.append([sku, f"{category.split(' > ')[-1]} item {i}", category, f"{(i % 40) + 1}.50", "5"])
        header = ["sku", "name", "category"] if catalogue == "names" else ["sku", "name", "category", "price", "stock"]
        _write_csv(path, header, cat_rows)
        shape.catalogue = path
    return shape


def read_export(path: Path) -> dict[str, list[str]]:
    """``recommend --all --out`` CSV -> customer -> SKUs in rank order."""
    picks: dict[str, list[tuple[int, str]]] = {}
    with path.open(newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            picks.setdefault(row["user"], []).append((int(row["rank"]), row["sku"]))
    return {user: [sku for _, sku in sorted(items)] for user, items in picks.items()}


def recall(picks: dict[str, list[str]], shape: Shape, n: int) -> float:
    """Mean share of each customer's held-out products among their first ``n`` picks."""
    scores = [len(set(picks.get(c, [])[:n]) & shape.held_out[c]) / len(shape.held_out[c]) for c in shape.customers]
    return float(np.mean(scores))


def popularity_picks(shape: Shape, n: int) -> dict[str, list[str]]:
    """The baseline: the file's most frequent products a customer has not consumed."""
    return {c: [sku for sku in shape.popular if sku not in shape.consumed.get(c, set())][:n] for c in shape.customers}


def jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path
