"""Recommendation quality on Online Retail with a temporal holdout (EVALUATION.md, section 1).

Run from the repository root::

    .venv/bin/python bench/quality.py [--quick] [--write-results]

Protocol (exactly EVALUATION.md section 1):

1. keep rows with a CustomerID, Quantity > 0, UnitPrice > 0 and an InvoiceNo not
   starting with "C"; times are the file's naive InvoiceDate;
2. train = (customer, stock code) pairs bought before 2011-11-01 00:00;
3. test = distinct pairs bought on/after it whose customer and product occur in
   train, minus pairs already in train ("new items");
4. every customer with a test pair (1,444) gets 10 products, excluding what they
   bought in train; NDCG@10 (binary gain, natural-log discount, ideal DCG over
   min(10, |test|)), P@10, R@10, MAP@10, averaged over those customers.

Model choice never looks at the test set: every hyper-parameter, the matrix
weighting (time decay) and the hybrid blend weights are chosen on a validation
split carved from the training period only (train before 2011-10-01, validate on
the new pairs of October 2011, same rules as the test set). The chosen
configurations are then refitted on the full training period and scored once on
the test set. Each algorithm's row is its best configuration on validation; the
"selected" row is the overall winner of ``select_model`` on validation.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import lzma
import os
import platform
import re
import sys
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.sparse as sp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from recommendations.engine import (  # noqa: E402
    ALGORITHMS,
    DEFAULT_CANDIDATES,
    Kind,
    SideData,
    algorithm_build,
    matrix_build,
    recent_popularity,
    select_model,
)
from recommendations.engine.evaluation import evaluate, temporal_split  # noqa: E402

DATA = ROOT / "data" / "online_retail.csv.xz"
RESULTS = ROOT / "bench" / "RESULTS.md"
SECTION = "## Recommendation quality (Online Retail, temporal holdout)"
CUTOFF = "2011-11-01T00:00:00"
VALIDATION_CUTOFF = "2011-10-01T00:00:00"
EXPECTED_TEST_CUSTOMERS = 1444
K = 10


# --------------------------------------------------------------------------- data
@dataclass
class Purchases:
    """Filtered purchase lines as parallel arrays."""

    customers: np.ndarray  # int64
    items: np.ndarray  # int64 (index into stock_codes)
    quantities: np.ndarray  # float32
    times: np.ndarray  # float64 unix seconds (naive InvoiceDate read as UTC)
    stock_codes: np.ndarray  # str
    descriptions: list[str]  # per stock code (most frequent spelling)


def load_purchases(path: Path = DATA) -> Purchases:
    """Read the CSV and apply the protocol's filters (step 1)."""
    customers, codes, quantities, dates, descriptions = [], [], [], [], []
    with lzma.open(path, "rt", encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        for row in reader:
            customer = row["CustomerID"].strip()
            if not customer or row["InvoiceNo"].startswith("C"):
                continue
            quantity = float(row["Quantity"])
            if quantity <= 0 or float(row["UnitPrice"]) <= 0:
                continue
            customers.append(int(float(customer)))
            codes.append(row["StockCode"].strip())
            quantities.append(quantity)
            dates.append(row["InvoiceDate"])
            descriptions.append(row["Description"].strip())
    stock_codes, items = np.unique(np.array(codes), return_inverse=True)
    times = np.array(dates, dtype="datetime64[s]").astype(np.int64).astype(np.float64)
    # most frequent description per stock code (codes have several spellings)
    text_by_code: dict[int, dict[str, int]] = {}
    for item, text in zip(items.tolist(), descriptions):
        counts = text_by_code.setdefault(item, {})
        counts[text] = counts.get(text, 0) + 1
    names = [max(text_by_code[i].items(), key=lambda kv: kv[1])[0] for i in range(len(stock_codes))]
    return Purchases(
        customers=np.array(customers, dtype=np.int64),
        items=items.astype(np.int64),
        quantities=np.array(quantities, dtype=np.float32),
        times=times,
        stock_codes=stock_codes,
        descriptions=names,
    )


def seconds(iso: str) -> float:
    return float(np.datetime64(iso, "s").astype(np.int64))


@dataclass
class Fold:
    """Training events + held-out new pairs for one temporal cutoff."""

    train: np.ndarray  # bool mask over purchases
    test: np.ndarray  # bool mask: new (customer, item) pairs after cutoff, both known
    cutoff: float
    end: float  # test events strictly before this (validation ends at the test cutoff)


def make_fold(data: Purchases, cutoff: str, end: str | None = None) -> Fold:
    limit = np.inf if end is None else seconds(end)
    inside = data.times < limit
    split = temporal_split(
        data.customers[inside],
        data.items[inside],
        data.times[inside],
        cutoff=seconds(cutoff),
        known_only=True,
        new_pairs_only=True,
    )
    train = np.zeros(data.times.size, bool)
    test = np.zeros(data.times.size, bool)
    train[inside] = split.train
    test[inside] = split.test
    return Fold(train=train, test=test, cutoff=seconds(cutoff), end=limit)


@dataclass
class Matrices:
    train: sp.csr_matrix
    test: sp.csr_matrix
    user_ids: np.ndarray
    item_ids: np.ndarray
    side: SideData


def build(data: Purchases, fold: Fold, *, half_life_days: float | None, trending_half_life: float) -> Matrices:
    """Train matrix + test pairs for a fold.

    Without decay the training matrix holds the distinct (customer, product) pairs
    (value 1). With ``half_life_days`` every purchase line counts
    ``0.5 ** (age / half_life)`` at the cutoff, summed per pair (repeat purchases
    add up): the algorithms' ``weighting`` decides whether they use these weights
    (``"binary"`` recovers the distinct pairs).
    """
    t = fold.train
    kind_weights = {int(Kind.PURCHASE): 1.0}
    train = matrix_build(
        users=data.customers[t],
        items=data.items[t],
        kinds=np.full(int(t.sum()), int(Kind.PURCHASE), np.int16),
        values=np.ones(int(t.sum()), np.float32),
        times=data.times[t],
        kind_weights=kind_weights,
        value_modes={},
        half_life_days=half_life_days,
        now=fold.cutoff,
    )
    if half_life_days is None:
        train.user_items.data[:] = 1.0  # distinct pairs
    s = fold.test
    test = matrix_build(
        users=data.customers[s],
        items=data.items[s],
        kinds=np.full(int(s.sum()), int(Kind.PURCHASE), np.int16),
        values=np.ones(int(s.sum()), np.float32),
        times=data.times[s],
        kind_weights=kind_weights,
        value_modes={},
        user_ids=train.user_ids,
        item_ids=train.item_ids,
    )
    test.user_items.data[:] = 1.0
    recent = recent_popularity(
        items=data.items[t],
        times=data.times[t],
        item_ids=train.item_ids,
        half_life_days=trending_half_life,
        now=fold.cutoff,
    )
    side = SideData(
        item_text=[data.descriptions[i] for i in train.item_ids],
        item_recent=recent,
    )
    return Matrices(train.user_items, test.user_items, train.user_ids, train.item_ids, side)


# --------------------------------------------------------------------------- protocol
ROW_ORDER = (
    "popularity",
    "trending",
    "content",
    "item_knn",
    "item_knn_bm25",
    "svd",
    "als",
    "bpr",
    "ease",
    "hybrid",
)
assert set(ROW_ORDER) == set(ALGORITHMS), "a new algorithm needs a place in the table"

MATRIX_GRID: tuple[dict[str, float | None], ...] = (
    {"half_life_days": None, "trending_half_life": 7.0},
    {"half_life_days": 14.0, "trending_half_life": 2.0},
    {"half_life_days": 14.0, "trending_half_life": 7.0},
    {"half_life_days": 30.0, "trending_half_life": 2.0},
)
"""Matrix time decay x trending half-life, chosen on validation like everything else."""


def fmt_config(config: dict) -> str:
    decay = config["half_life_days"]
    return f"decay {'none' if decay is None else f'{decay:g}d'}, trending half-life {config['trending_half_life']:g}d"


def short_params(name: str, params: dict) -> str:
    defaults = ALGORITHMS[name].defaults
    changed = {k: v for k, v in params.items() if defaults.get(k) != v}
    if name == "hybrid":
        cf = params["cf"]
        cf_changed = {k: v for k, v in params["cf_params"].items() if ALGORITHMS[cf].defaults.get(k) != v}
        return f"{cf} {cf_changed} + trending x{params['w_trending']:g} + content x{params['w_content']:g}"
    return str(changed) if changed else "defaults"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="only the first matrix config")
    parser.add_argument("--write-results", action="store_true", help="update bench/RESULTS.md")
    parser.add_argument("--repeats", type=int, default=3, help="fits per row (median time)")
    args = parser.parse_args(argv)
    started = time.perf_counter()

    tic = time.perf_counter()
    data = load_purchases()
    print(f"loaded {data.times.size:,} purchase lines in {time.perf_counter() - tic:.1f}s")
    test_fold = make_fold(data, CUTOFF)
    valid_fold = make_fold(data, VALIDATION_CUTOFF, end=CUTOFF)

    # ---- model selection on the validation split (training period only)
    grid = MATRIX_GRID[:1] if args.quick else MATRIX_GRID
    per_config = []
    for config in grid:
        m = build(
            data, valid_fold, half_life_days=config["half_life_days"], trending_half_life=config["trending_half_life"]
        )
        tic = time.perf_counter()
        # the fixed grid its RESULTS were measured with (``candidates_for`` is what ``train`` uses)
        result = select_model(m.train, m.test, m.side, k=K, candidates=DEFAULT_CANDIDATES)
        users = int((np.diff(m.test.indptr) > 0).sum())
        print(f"\nvalidation ({fmt_config(config)}): {users} customers, select_model {time.perf_counter() - tic:.1f}s")
        for row in result.rows:
            if row.get("status") == "ok":
                described = short_params(row["algorithm"], row["params"])
                print(f"  {row['algorithm']:14s} ndcg {row['ndcg']:.4f} fit {row['train_seconds']:6.2f}s  {described}")
            else:
                print(f"  {row['algorithm']:14s} {row.get('status')}: {row.get('reason')}")
        per_config.append((config, result))

    # best configuration per algorithm, and overall, by validation NDCG
    best: dict[str, tuple[float, dict, dict]] = {}
    for config, result in per_config:
        for row in result.rows:
            if row.get("status") != "ok":
                continue
            name = row["algorithm"]
            if name not in best or row["ndcg"] > best[name][0]:
                best[name] = (row["ndcg"], config, row["params"])
    selected_name = max(best, key=lambda name: best[name][0])
    selected_valid, selected_config, selected_params = best[selected_name]
    described = short_params(selected_name, selected_params)
    print(
        f"\nselected on validation: {selected_name} ({described}; "
        f"{fmt_config(selected_config)}) NDCG@10 {selected_valid:.4f}"
    )

    # ---- refit on the whole training period, score once on the test set
    matrices: dict[tuple, Matrices] = {}
    rows = []
    for name in sorted(best, key=ROW_ORDER.index):
        valid_ndcg, config, params = best[name]
        key = (config["half_life_days"], config["trending_half_life"])
        if key not in matrices:
            matrices[key] = build(
                data,
                test_fold,
                half_life_days=config["half_life_days"],
                trending_half_life=config["trending_half_life"],
            )
        m = matrices[key]
        customers = int((np.diff(m.test.indptr) > 0).sum())
        assert customers == EXPECTED_TEST_CUSTOMERS, customers
        model, fit_seconds = timed_fit(name, params, m, args.repeats)
        metrics = evaluate(model, m.train, m.test, k=K)
        rows.append(
            {
                "algorithm": name,
                "params": params,
                "config": config,
                "valid_ndcg": valid_ndcg,
                "fit_seconds": fit_seconds,
                **metrics,
            }
        )
    print(f"\ntest: {EXPECTED_TEST_CUSTOMERS:,} customers (asserted), cutoff {CUTOFF[:10]}")
    table = render_table(rows, selected_name)
    print(table)
    print("\nreferences (EVALUATION.md settings, same machine and run):")
    references = render_references(reference_rows(data, test_fold, args.repeats))
    print(references)
    total = time.perf_counter() - started
    print(f"total {total:.0f}s")
    if args.write_results:
        write_results(table, references, rows, selected_name, total, args.repeats)
    return 0


def timed_fit(name: str, params: dict, m: Matrices, repeats: int):
    """Fit ``repeats`` times; return the last model and the median fit time."""
    times = []
    for _ in range(repeats):
        model = algorithm_build(name, **params)
        tic = time.perf_counter()
        model.fit(m.train, m.side)
        times.append(time.perf_counter() - tic)
    return model, float(np.median(times))


REFERENCES: tuple[tuple[str, str, dict], ...] = (
    ("popularity (all time)", "popularity", {}),
    ("popularity (last 30 days)", "trending", {"smoothing": 0.0}),
    ("item-kNN (BM25, K=100)", "item_knn_bm25", {"k": 100}),
    (
        "ALS (64 factors, reg 0.05, 15 it.)",
        "als",
        {"factors": 64, "regularization": 0.05, "iterations": 15, "weighting": "binary"},
    ),
    ("EASE (lambda 500)", "ease", {"lam": 500.0, "weighting": "binary"}),
)
"""EVALUATION.md's reference models, rerun here on distinct pairs without decay."""


def reference_rows(data: Purchases, fold: Fold, repeats: int) -> list[dict]:
    m = build(data, fold, half_life_days=None, trending_half_life=7.0)
    # "last 30 days": distinct customers per product in the 30 days before the cutoff
    recent = fold.train & (data.times >= fold.cutoff - 30 * 86_400)
    pairs = np.unique(np.stack([data.customers[recent], data.items[recent]]), axis=1)
    window = np.bincount(np.searchsorted(m.item_ids, pairs[1]), minlength=m.item_ids.size)
    rows = []
    for label, name, params in REFERENCES:
        side = m.side
        if name == "trending":
            side = SideData(item_recent=window.astype(np.float32))
        matrices = Matrices(m.train, m.test, m.user_ids, m.item_ids, side)
        model, fit_seconds = timed_fit(name, params, matrices, repeats)
        rows.append({"label": label, "fit_seconds": fit_seconds, **evaluate(model, m.train, m.test, k=K)})
    return rows


def render_references(rows: list[dict]) -> str:
    lines = [
        "| reference | NDCG@10 | P@10 | R@10 | MAP@10 | coverage | fit s |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        lines.append(
            f"| {row['label']} | {row['ndcg']:.4f} | {row['precision']:.4f} "
            f"| {row['recall']:.4f} | {row['map']:.4f} | {row['coverage']:.3f} "
            f"| {row['fit_seconds']:.2f} |"
        )
    return "\n".join(lines)


def render_table(rows: list[dict], selected_name: str) -> str:
    lines = [
        "| model | validation NDCG@10 | NDCG@10 | P@10 | R@10 | MAP@10 | coverage | fit s | configuration |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        name = row["algorithm"]
        label = f"**{name} (selected)**" if name == selected_name else name
        lines.append(
            f"| {label} | {row['valid_ndcg']:.4f} | {row['ndcg']:.4f} | {row['precision']:.4f} "
            f"| {row['recall']:.4f} | {row['map']:.4f} | {row['coverage']:.3f} "
            f"| {row['fit_seconds']:.2f} | {short_params(name, row['params'])}; "
            f"{fmt_config(row['config'])} |"
        )
    return "\n".join(lines)


def write_results(
    table: str,
    references: str,
    rows: list[dict],
    selected_name: str,
    total: float,
    repeats: int,
) -> None:
    selected = next(row for row in rows if row["algorithm"] == selected_name)

    def wrap(text: str) -> str:
        return textwrap.fill(text, width=88, break_on_hyphens=False)

    body = "\n".join(
        [
            SECTION,
            "",
            wrap(
                f"Date: {dt.date.today().isoformat()}. Machine: {os.cpu_count()} cores "
                f"({platform.machine()}, shared with other jobs), Python "
                f"{platform.python_version()}. Command: `.venv/bin/python bench/quality.py "
                f"--write-results` ({total:.0f}s)."
            ),
            "",
            wrap(
                "Protocol of EVALUATION.md section 1: cutoff 2011-11-01, new-item test pairs, "
                f"train purchases excluded, {EXPECTED_TEST_CUSTOMERS:,} customers (asserted), "
                "binary gain, natural-log discount, ideal DCG over min(10, |test|). Every choice "
                "(hyper-parameters, matrix time decay, trending half-life, hybrid weights) was "
                "made by `select_model` on a validation split carved from the training period: "
                "train before 2011-10-01, validate on October's new pairs under the test's "
                "rules. Each row is its algorithm's best configuration on validation (over "
                "`DEFAULT_CANDIDATES` x the matrix configurations in `MATRIX_GRID`), refitted "
                "on all training data and scored once on the test set; the selected model is "
                f"the best of all on validation. Fit times: median of {repeats} fits, shared "
                "and noisy machine."
            ),
            "",
            table,
            "",
            wrap(
                f"Selected model: **{selected_name}**, test NDCG@10 **{selected['ndcg']:.4f}** "
                f"(goal >= 0.11): {short_params(selected_name, selected['params'])}; "
                f"{fmt_config(selected['config'])}."
            ),
            "",
            wrap(
                "Notes. What carries the gain is recency: on this Christmas-season test a "
                "short-half-life trending signal alone is about as good as the all-time "
                "collaborative references, and EASE fitted on confidence weights of a 14-day-decayed matrix "
                "(recent co-purchases count more, every purchase still counts) beats EASE on "
                "plain pairs. The hybrid's blend weights are tuned on the same validation month "
                "it is then judged on, which flatters it slightly in the choice; the test score "
                "is untouched by this. Differences below ~0.002 NDCG between configurations are "
                "within noise (e.g. the two item_knn weightings)."
            ),
            "",
            wrap(
                "EVALUATION.md's reference models rerun in the same process on the same data "
                "(distinct pairs, no decay; EVALUATION.md lists 0.038, 0.078, 0.087, 0.101, "
                "0.103):"
            ),
            "",
            references,
            "",
        ]
    )
    text = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n"
    pattern = re.compile(rf"^{re.escape(SECTION)}\n.*?(?=^## |\Z)", re.S | re.M)
    if pattern.search(text):
        text = pattern.sub(body + "\n", text)
    else:
        text = text.rstrip("\n") + "\n\n" + body
    RESULTS.write_text(text)
    print(f"wrote {RESULTS.relative_to(ROOT)}")


if __name__ == "__main__":
    raise SystemExit(main())
