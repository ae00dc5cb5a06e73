"""Predicted audiences (the live trends board's "likely buyers"): do they find who buys?

Run from the repository root (a minute or two, no database)::

    .venv/bin/python bench/audiences.py [--known 300] [--no-write]

Protocol, on the bundled Online Retail purchases (bench/quality.py's filters): fit on
the purchases before 2011-11-01; the customers who bought before then are the ones
that can be scored. For a product, the positives are the customers who bought it in
the last five weeks (2011-11-01 .. 2011-12-09) and never before; every other scored
customer who had not bought it is a negative.

* **New products**: first sold after the cutoff (no history at all), with at least 5
  positives. Scored by content similarity (``engine.audience.content_affinity``: the
  sum over each customer's purchases of their TF-IDF cosine with the product's
  description) -- what the board does for a product the model does not know.
* **Known products**: a random sample with history and at least 5 positives. Scored
  by the model's item-to-customer direction (``engine.audience.item_affinity`` with
  ALS and with EASE, as the board does with the active model) and by content.
* Baselines: the most active customers first (number of purchase lines; what one
  would mail without a model) and chance.

Reported: AUC (the chance a buyer ranks above a non-buyer; 0.5 is chance) and the
share of the buyers found in the top 500 (about an eighth of the customers), each the
mean over products; and the time to score every customer for one product (median).
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import scipy.sparse as sp
from scipy import stats

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from quality import CUTOFF, load_purchases, seconds  # noqa: E402

from recommendations.engine import ALSRecommender, ContentRecommender, EASERecommender, SideData  # noqa: E402
from recommendations.engine.audience import content_affinity, item_affinity  # noqa: E402

RESULTS = ROOT / "bench" / "RESULTS.md"
TOP = 500
MIN_BUYERS = 5


def auc(scores: np.ndarray, positive: np.ndarray) -> float:
    """Mann-Whitney AUC with ties counted half."""
    ranks = stats.rankdata(scores)
    n_pos = int(positive.sum())
    n_neg = positive.size - n_pos
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def top_recall(scores: np.ndarray, positive: np.ndarray, n: int = TOP) -> float:
    order = np.lexsort((np.arange(scores.size), -scores))[:n]
    return float(positive[order].sum() / positive.sum())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--known", type=int, default=300, help="how many known products to sample")
    parser.add_argument("--no-write", action="store_true", help="print only; do not append to bench/RESULTS.md")
    args = parser.parse_args(argv)

    tic = time.perf_counter()
    data = load_purchases()
    cutoff = seconds(CUTOFF)
    before = data.times < cutoff
    customers = np.unique(data.customers[before])
    n_items = data.stock_codes.size
    rows = np.searchsorted(customers, data.customers)
    known_customer = np.isin(data.customers, customers)
    history = sp.csr_matrix(
        (np.ones(int(before.sum()), np.float32), (rows[before], data.items[before])), shape=(customers.size, n_items)
    )
    history.sum_duplicates()
    history.data = np.log1p(history.data).astype(np.float32)  # repeat purchases count, with diminishing returns
    bought_before = history.copy()
    bought_before.data[:] = 1.0
    after = ~before & known_customer
    future = sp.csr_matrix(
        (np.ones(int(after.sum()), np.float32), (rows[after], data.items[after])), shape=(customers.size, n_items)
    )
    future.sum_duplicates()
    future.data[:] = 1.0
    new_buyers = (future - future.multiply(bought_before)).tocsc()  # bought after the cutoff, never before
    had_history = np.asarray(bought_before.sum(axis=0)).ravel() > 0
    n_pos = np.diff(new_buyers.indptr)
    new_items = np.flatnonzero(~had_history & (n_pos >= MIN_BUYERS))
    rng = np.random.default_rng(7)
    known_pool = np.flatnonzero(had_history & (n_pos >= MIN_BUYERS))
    known_items = np.sort(rng.choice(known_pool, size=min(args.known, known_pool.size), replace=False))
    activity = np.asarray((history > 0).sum(axis=1)).ravel().astype(np.float64)
    print(
        f"{customers.size} customers with history, {n_items} products; {new_items.size} new products and "
        f"{known_items.size} known ones with >= {MIN_BUYERS} new buyers ({time.perf_counter() - tic:.1f}s)"
    )

    tic = time.perf_counter()
    content = ContentRecommender().fit(
        sp.csr_matrix((0, n_items), dtype=np.float32), SideData(item_text=list(data.descriptions))
    )
    content_fit = time.perf_counter() - tic
    tic = time.perf_counter()
    als = ALSRecommender(factors=64, iterations=15, regularization=0.05, random_state=1).fit(history)
    als_fit = time.perf_counter() - tic
    ease = EASERecommender().fit(history)
    print(f"content fitted in {content_fit:.1f}s, ALS in {als_fit:.1f}s")

    results: dict[tuple[str, str], list[tuple[float, float]]] = {}
    timings: dict[str, list[float]] = {"content": [], "model": []}

    def record(group: str, method: str, scores: np.ndarray, item: int) -> None:
        eligible = np.asarray(bought_before[:, item].todense()).ravel() == 0
        positive = np.zeros(customers.size, bool)
        positive[new_buyers.indices[new_buyers.indptr[item] : new_buyers.indptr[item + 1]]] = True
        s, p = scores[eligible], positive[eligible]
        if p.sum() == 0 or p.all():
            return
        results.setdefault((group, method), []).append((auc(s, p), top_recall(s, p)))

    for group, items in (("new products", new_items), ("known products", known_items)):
        for item in items.tolist():
            tic = time.perf_counter()
            by_content = content_affinity(history, content.item_features, content.item_features[item])
            timings["content"].append(time.perf_counter() - tic)
            record(group, "content similarity", by_content, item)
            if group == "known products":
                tic = time.perf_counter()
                by_model = item_affinity(als, history, item)
                timings["model"].append(time.perf_counter() - tic)
                record(group, "model: ALS (item . customer vectors)", by_model, item)
                record(group, "model: EASE (item . customer vectors)", item_affinity(ease, history, item), item)
            record(group, "most active customers", activity, item)
            record(group, "chance", rng.random(customers.size), item)

    lines = [
        "| products | scored by | products | AUC | buyers in the top 500 |",
        "|---|---|---:|---:|---:|",
    ]
    for (group, method), values in results.items():
        aucs, recalls = zip(*values, strict=True)
        lines.append(
            f"| {group} | {method} | {len(values)} | {statistics.mean(aucs):.3f} | {statistics.mean(recalls):.1%} |"
        )
    timing = (
        f"Scoring all {customers.size} customers for one product (median): content "
        f"{1000 * statistics.median(timings['content']):.0f} ms, model "
        f"{1000 * statistics.median(timings['model']):.0f} ms with ALS, folding every customer in (after a content fit of {content_fit:.1f} s over "
        f"{n_items} products and an ALS fit of {als_fit:.1f} s)."
    )
    table = "\n".join(lines)
    print(table)
    print(timing)
    if not args.no_write:
        section = f"""
## Predicted audiences: likely buyers of a product (Online Retail, temporal holdout)

`.venv/bin/python bench/audiences.py` ({platform.processor() or platform.machine()}, {time.strftime("%Y-%m-%d")}).
Fit on purchases before {CUTOFF[:10]}; for each product, the customers who bought it in the last five weeks
and never before are the buyers to find among the {customers.size} customers with history (who had not bought it).
New products were first sold after the cutoff (no history: content similarity is all there is); known products
are a random sample. AUC: the chance a buyer ranks above a non-buyer (0.5 = chance). Top 500 is about an eighth
of the customers, so chance finds about {TOP / customers.size:.0%} of the buyers there.

{table}

{timing}
"""
        with RESULTS.open("a", encoding="utf-8") as handle:
            handle.write(section)
        print(f"appended to {RESULTS}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
