"""Customer predictions validated on Online Retail: fit before a cutoff, predict each
customer's purchases in the 91 days after it, compare with what they did.

Run from the repository root::

    PYTHONPATH=. .venv/bin/python bench/clv.py [--cutoff 2011-09-09] [--days 91]

Reads data/online_retail.csv.xz with the importer's own parser and cleaning
(``shop.importers.online_retail``: cancellations, stock adjustments, fees and zero
prices are not sales), one order per invoice of a known customer, its total the sum of
its lines. Like the app (``recommendations.predictions``) it counts purchase *days*:
several invoices of one customer on one day are one purchase. Models: BG/NBD and
MBG/NBD (``recommendations.engine.clv``) with Gamma-Gamma for the value. Baselines: the
customer's own past rate (repeat purchase days per day since the first purchase, times
the horizon) and "the last 91 days repeat themselves". Errors per customer (MAE, RMSE),
by calibration frequency, the total, and how well P(alive) ranks who buys again (AUC).
Prints a markdown section for bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import time
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from scipy import stats

from recommendations.engine.clv import history_summarize, lifetime_value, spend_fit, transactions_fit
from shop.importers.online_retail import MalformedRow, parse_row, read_rows, skip_reason

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "data" / "online_retail.csv.xz"
DAY = 86400.0
BUCKETS = ((0, 0, "0"), (1, 1, "1"), (2, 3, "2-3"), (4, 7, "4-7"), (8, 10**9, "8+"))


def invoices(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(customer, time in days since the epoch, total) of every sale invoice of a known customer."""
    totals: dict[str, float] = defaultdict(float)
    meta: dict[str, tuple[int, float]] = {}
    for line, fields in read_rows(path):
        try:
            row = parse_row(fields, line)
        except MalformedRow:
            continue
        if row.customer_id is None or skip_reason(row) is not None:
            continue
        totals[row.invoice] += row.quantity * float(row.unit_price)
        meta.setdefault(row.invoice, (int(row.customer_id), row.invoiced_at.timestamp() / DAY))
    keys = list(totals)
    return (
        np.array([meta[k][0] for k in keys], dtype=np.int64),
        np.array([meta[k][1] for k in keys], dtype=np.float64),
        np.array([totals[k] for k in keys], dtype=np.float64),
    )


def errors(predicted: np.ndarray, actual: np.ndarray) -> tuple[float, float]:
    diff = predicted - actual
    return float(np.mean(np.abs(diff))), float(np.sqrt(np.mean(diff**2)))


def auc(score: np.ndarray, positive: np.ndarray) -> float:
    """Probability that a random positive scores above a random negative (ties half)."""
    ranks = stats.rankdata(score)
    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def synthetic(n: int) -> None:
    """Time the engine's steps on ``n`` simulated customers over a year (whole days)."""
    rng = np.random.default_rng(1)
    rates = rng.gamma(0.7, 1 / 60, n)
    first = rng.uniform(0, 365, n)
    counts = 1 + rng.poisson(rates * (365 - first))
    customers = np.repeat(np.arange(n), counts)
    days = first[customers] + rng.uniform(0, 1, len(customers)) * (365 - first[customers])
    days[np.r_[0, np.cumsum(counts)[:-1]]] = first  # each customer's first purchase
    values = rng.gamma(3, 20, len(customers))
    steps: list[tuple[str, float]] = []
    t0 = time.perf_counter()
    history = history_summarize(customers, days, values, end=365.0)
    steps.append(("summarise", time.perf_counter() - t0))
    t0 = time.perf_counter()
    model = transactions_fit(history.frequency, history.recency, history.age, model="mbgnbd")
    steps.append(("fit MBG/NBD", time.perf_counter() - t0))
    t0 = time.perf_counter()
    spend = spend_fit(history.frequency, history.mean_value)
    steps.append(("fit Gamma-Gamma", time.perf_counter() - t0))
    t0 = time.perf_counter()
    model.probability_alive(history.frequency, history.recency, history.age)
    model.expected_purchases(90.0, history.frequency, history.recency, history.age)
    lifetime_value(model, spend, history, horizon=365.25, step=365.25 / 12, discount_rate=0.01)
    steps.append(("predict (P(alive), 90 days, 12 monthly steps of value)", time.perf_counter() - t0))
    print(
        f"{n:,} simulated customers, {len(customers):,} purchases: "
        + ", ".join(f"{name} {seconds:.1f} s" for name, seconds in steps)
        + f" (`PYTHONPATH=. .venv/bin/python bench/clv.py --synthetic {n}`)."
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cutoff", default="2011-09-09", help="end of the calibration period (UTC date)")
    parser.add_argument("--days", type=int, default=91, help="holdout length in days")
    parser.add_argument("--synthetic", type=int, default=0, help="time the steps on N simulated customers instead")
    args = parser.parse_args()
    if args.synthetic:
        synthetic(args.synthetic)
        return
    cutoff = datetime.fromisoformat(args.cutoff).replace(tzinfo=UTC).timestamp() / DAY
    end = cutoff + args.days

    t0 = time.perf_counter()
    customers, days, totals = invoices(DATA)
    read_s = time.perf_counter() - t0
    calibration = days < np.floor(cutoff) + 1  # purchase days up to and including the cutoff day
    history = history_summarize(
        customers[calibration], days[calibration], totals[calibration], end=float(np.floor(cutoff) + 1 - 1e-9)
    )
    # actual purchase days of each calibration customer in the holdout
    holdout = (days >= np.floor(cutoff) + 1) & (days < np.floor(end) + 1)
    hold_days = {(int(c), int(np.floor(d))) for c, d in zip(customers[holdout], days[holdout], strict=True)}
    hold_value: dict[int, float] = defaultdict(float)
    for c, v in zip(customers[holdout], totals[holdout], strict=True):
        hold_value[int(c)] += float(v)
    actual_count: dict[int, int] = defaultdict(int)
    for c, _ in hold_days:
        actual_count[c] += 1
    ids = history.customer_ids
    actual = np.array([actual_count.get(int(c), 0) for c in ids], dtype=np.float64)
    actual_value = np.array([hold_value.get(int(c), 0.0) for c in ids], dtype=np.float64)
    x, t_x, age = history.frequency, history.recency, history.age
    horizon = float(args.days)

    rows: dict[str, np.ndarray] = {}
    alive: dict[str, np.ndarray] = {}
    fit_s: dict[str, float] = {}
    params: dict[str, str] = {}
    for name in ("bgnbd", "mbgnbd"):
        t1 = time.perf_counter()
        model = transactions_fit(x, t_x, age, model=name)
        fit_s[name] = time.perf_counter() - t1
        rows[name.upper().replace("NBD", "/NBD")] = model.expected_purchases(horizon, x, t_x, age)
        alive[name] = model.probability_alive(x, t_x, age)
        params[name] = f"r={model.r:.3f}, alpha={model.alpha:.2f} days, a={model.a:.3f}, b={model.b:.3f}"
    t1 = time.perf_counter()
    spend = spend_fit(x, history.mean_value)
    fit_s["gamma-gamma"] = time.perf_counter() - t1
    rows["baseline: own past rate"] = np.where(age > 0, x / np.maximum(age, 1) * horizon, 0.0)
    last_period = (days >= np.floor(cutoff) + 1 - args.days) & calibration
    last_days = {(int(c), int(np.floor(d))) for c, d in zip(customers[last_period], days[last_period], strict=True)}
    last_count: dict[int, int] = defaultdict(int)
    for c, _ in last_days:
        last_count[c] += 1
    rows[f"baseline: last {args.days} days repeat"] = np.array([last_count.get(int(c), 0) for c in ids], float)

    n = len(ids)
    lines = [
        f"Online Retail, calibration up to {args.cutoff} ({n} customers with a purchase, "
        f"{int(np.count_nonzero(x))} with a repeat purchase day), holdout the next {args.days} days "
        f"({int(np.count_nonzero(actual))} of them bought, {int(actual.sum())} purchase days in all). "
        f"Purchases are purchase days per customer; command: `PYTHONPATH=. .venv/bin/python bench/clv.py`.",
        "",
        "| predictor | MAE | RMSE | total predicted (actual "
        + f"{int(actual.sum())}) | "
        + " | ".join(f"MAE x={label}" for _, _, label in BUCKETS)
        + " |",
        "|---|---|---|---|" + "---|" * len(BUCKETS),
    ]
    bucket_sizes = []
    for low, high, _ in BUCKETS:
        bucket_sizes.append(int(np.count_nonzero((x >= low) & (x <= high))))
    for name, predicted in rows.items():
        mae, rmse = errors(predicted, actual)
        per = []
        for low, high, _ in BUCKETS:
            mask = (x >= low) & (x <= high)
            per.append(f"{errors(predicted[mask], actual[mask])[0]:.3f}")
        lines.append(f"| {name} | {mae:.3f} | {rmse:.3f} | {predicted.sum():.0f} | " + " | ".join(per) + " |")
    lines.append("")
    lines.append(
        "Customers per calibration frequency bucket: "
        + ", ".join(f"x={label}: {size}" for (_, _, label), size in zip(BUCKETS, bucket_sizes, strict=True))
        + "."
    )
    bought = actual > 0
    recency_score = -(age - t_x)  # baseline: the more recent the last purchase, the likelier
    lines.append(
        f"Who buys again in the holdout, ranked by P(alive): AUC {auc(alive['bgnbd'], bought):.3f} (BG/NBD), "
        f"{auc(alive['mbgnbd'], bought):.3f} (MBG/NBD); by days since the last purchase alone "
        f"{auc(recency_score, bought):.3f}. Ranked by expected purchases: AUC {auc(rows['MBG/NBD'], bought):.3f} "
        f"(MBG/NBD), by the own-past-rate baseline {auc(rows['baseline: own past rate'], bought):.3f}."
    )
    # value: expected purchases x Gamma-Gamma order value vs the customer's past mean order x the past rate
    value = rows["MBG/NBD"] * spend.expected_value(x, history.mean_value)
    first_value = np.array([np.mean(totals[calibration][customers[calibration] == c]) for c in ids], dtype=np.float64)
    naive_value = rows["baseline: own past rate"] * first_value
    lines.append(
        f"Holdout spend per customer (GBP; actual total {actual_value.sum():,.0f}): MBG/NBD x Gamma-Gamma MAE "
        f"{errors(value, actual_value)[0]:.1f}, RMSE {errors(value, actual_value)[1]:.1f}, total {value.sum():,.0f}; "
        f"baseline (past rate x past mean order) MAE {errors(naive_value, actual_value)[0]:.1f}, RMSE "
        f"{errors(naive_value, actual_value)[1]:.1f}, total {naive_value.sum():,.0f}."
    )
    lines.append(
        f"Fitted: BG/NBD {params['bgnbd']}; MBG/NBD {params['mbgnbd']}; Gamma-Gamma p={spend.p:.2f}, "
        f"q={spend.q:.2f}, gamma={spend.gamma:.1f}. Fit times: "
        + ", ".join(f"{k} {v:.2f} s" for k, v in fit_s.items())
        + f" (reading the file {read_s:.0f} s)."
    )
    print("\n".join(lines))


if __name__ == "__main__":
    main()
