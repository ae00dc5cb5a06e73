"""Which "because you bought X" explanations are true? Chooses ANCHOR_MIN_RANK
(recommendations/explanations.py) on data.

Run from the repository root::

    .venv/bin/python bench/explanations.py [--users 600] [--algorithms als,item_knn,ease]

Protocol: Online Retail purchases before 2011-11-01 (bench/quality.py's filters and
training matrix). For customers of the test period, a model fitted on the training
period picks 10 products (what they bought excluded); the anchors are their 3 most
recent distinct purchases, as in serving. For each pick, the best anchor is the one
whose one-item history ranks the pick highest against a random sample of the
catalogue (``recommendations.engine.explain``). Ground truth for "X really relates
to the pick": in the training data, the customers who bought X bought the pick at
least twice as often as customers at large (lift >= 2) and at least 3 of them did.

For each rank threshold the table gives the share of picks that keep a "because"
(coverage) and the share of those whose anchor really relates to the pick
(precision). "> 0" is the old rule (any positive contribution). The same is run on
own-data shapes: a plain ratings-like file (tests/own_data.py's generator, no
catalogue text) with the same ground truth.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import scipy.sparse as sp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from quality import CUTOFF, build, load_purchases, make_fold  # noqa: E402

from recommendations.engine import algorithm_build  # noqa: E402
from recommendations.engine.explain import anchor_strength, null_columns  # noqa: E402

THRESHOLDS = (None, 0.5, 0.8, 0.9, 0.95, 0.98, 0.99)
ANCHORS = 3
K = 10


def related(train: sp.csr_matrix) -> tuple[sp.csr_matrix, np.ndarray, int]:
    binary = train.copy()
    binary.data[:] = 1.0
    co = (binary.T @ binary).tocsr()
    counts = np.asarray(binary.sum(axis=0)).ravel()
    return co, counts, binary.shape[0]


def is_related(co: sp.csr_matrix, counts: np.ndarray, users: int, a: int, p: int) -> bool:
    both = co[a, p]
    if both < 3 or counts[a] == 0 or counts[p] == 0:
        return False
    return (both / counts[a]) / (counts[p] / users) >= 2.0


def measure(model, train: sp.csr_matrix, anchors_of: dict[int, np.ndarray], users: list[int]) -> dict:
    co, counts, n_users = related(train)
    null = null_columns(model.n_items)
    found = {t: [0, 0] for t in THRESHOLDS}  # threshold -> [explained, explained and related]
    picks_total = 0
    for u in users:
        row = train[u]
        cols, _ = model.top_k(row, K, exclude=row.indices.astype(np.int64))
        cols = cols[cols >= 0]
        anchors = anchors_of[u]
        if cols.size == 0 or anchors.size == 0:
            continue
        contrib, rank = anchor_strength(model, anchors, cols, null)
        picks_total += cols.size
        for t in THRESHOLDS:
            if t is None:
                ok = contrib > 0
                key = np.where(ok, contrib, -np.inf)
            else:
                ok = (rank >= t) & (contrib > 0)
                key = np.where(ok, rank + 1e-9 * contrib, -np.inf)
            best = np.argmax(key, axis=0)
            for j in np.flatnonzero(ok.any(axis=0)):
                found[t][0] += 1
                found[t][1] += int(is_related(co, counts, n_users, int(anchors[best[j]]), int(cols[j])))
    return {"picks": picks_total, "found": found}


def table(name: str, result: dict) -> list[str]:
    lines = [f"{name}: {result['picks']} picks", "| min rank | coverage | precision |", "|---|---|---|"]
    for t in THRESHOLDS:
        explained, true = result["found"][t]
        cov = explained / max(result["picks"], 1)
        prec = true / max(explained, 1)
        lines.append(f"| {'> 0 (old)' if t is None else f'{t:.2f}'} | {cov:.1%} | {prec:.1%} |")
    return lines


def online_retail(algorithms: list[str], n_users: int) -> list[str]:
    data = load_purchases()
    fold = make_fold(data, CUTOFF)
    m = build(data, fold, half_life_days=None, trending_half_life=7.0)
    # anchors: each customer's most recent distinct training purchases
    t = fold.train
    col_of = {int(i): c for c, i in enumerate(m.item_ids.tolist())}
    row_of = {int(u): r for r, u in enumerate(m.user_ids.tolist())}
    order = np.argsort(-data.times[t], kind="stable")
    cust, items = data.customers[t][order], data.items[t][order]
    anchors_of: dict[int, list[int]] = {}
    for c, i in zip(cust.tolist(), items.tolist()):
        lst = anchors_of.setdefault(row_of[c], [])
        col = col_of[i]
        if len(lst) < ANCHORS and col not in lst:
            lst.append(col)
    arrays = {u: np.array(v, np.int64) for u, v in anchors_of.items()}
    test_users = np.flatnonzero(np.diff(m.test.indptr) > 0)
    rng = np.random.default_rng(0)
    users = sorted(rng.choice(test_users, size=min(n_users, test_users.size), replace=False).tolist())
    out = []
    for name in algorithms:
        tic = time.perf_counter()
        model = algorithm_build(name).fit(m.train, m.side)
        result = measure(model, m.train, arrays, users)
        out += table(f"Online Retail, {name} ({len(users)} customers, {time.perf_counter() - tic:.0f}s)", result)
        out.append("")
        print("\n".join(out[-len(THRESHOLDS) - 4 :]), flush=True)
    return out


def synthetic(algorithms: list[str], n_users: int) -> list[str]:
    """Purchases only, no text: customers with 2 tastes among 20 categories of 30
    products (clusters), 40 % random noise events."""
    rng = np.random.default_rng(1)
    n_items, n_cat = 600, 20
    rows, cols = [], []
    for u in range(3000):
        tastes = rng.choice(n_cat, size=2, replace=False)
        for _ in range(rng.integers(6, 20)):
            if rng.random() < 0.4:
                item = int(rng.integers(n_items))
            else:
                c = int(rng.choice(tastes))
                item = c * 30 + int(min(rng.zipf(1.6), 30) - 1)
            rows.append(u)
            cols.append(item)
    matrix = sp.csr_matrix((np.ones(len(rows), np.float32), (rows, cols)), shape=(3000, n_items))
    matrix.data[:] = 1.0
    matrix.sum_duplicates()
    matrix.data[:] = 1.0
    anchors = {u: rng.permutation(matrix[u].indices)[:ANCHORS].astype(np.int64) for u in range(3000)}
    users = list(range(min(n_users, 3000)))
    out = []
    for name in algorithms:
        model = algorithm_build(name).fit(matrix)
        out += table(f"Own data (purchases only, no text), {name}", measure(model, matrix, anchors, users))
        out.append("")
        print("\n".join(out[-len(THRESHOLDS) - 4 :]), flush=True)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--users", type=int, default=600)
    parser.add_argument("--algorithms", default="als,item_knn,ease")
    args = parser.parse_args(argv)
    algorithms = [a for a in args.algorithms.split(",") if a]
    online_retail(algorithms, args.users)
    synthetic(algorithms, args.users)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
