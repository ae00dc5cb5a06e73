#!/usr/bin/env python
"""Training cost (EVALUATION.md section 2).

A synthetic store of 1,000,000 interactions (about 50,000 customers and 20,000
products, power-law popularity; ``manage.py seed_synthetic``) in PostgreSQL. Each
run trains one model version through the real path — ``model_train``: the
streaming database read, the bounded holdout evaluation, the fit on all data, the
artifact in storage, the activation decision — and, in the same process right
after, a bare ``implicit`` ALS fit on the same matrix with the same parameters
(the reference). Reports every stage, the medians over the runs, and the ratios
against the goal: total <= 1.5 x bare fit + 10 s, database read >= 500,000 rows/s.

    .venv/bin/python bench/train.py                # 3 runs, writes bench/RESULTS.md
    .venv/bin/python bench/train.py --runs 5 --no-write
    BENCH_DATABASE_URL=postgres://... .venv/bin/python bench/train.py
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench._rec_common import database_ensure, machine, median, results_section_write, seed  # noqa: E402

DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/affinity_bench_train"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL", DEFAULT_URL))
    parser.add_argument("--interactions", type=int, default=1_000_000)
    parser.add_argument("--users", type=int, default=50_000)
    parser.add_argument("--products", type=int, default=20_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--algorithm", default="als")
    parser.add_argument("--params", default='{"factors": 64, "regularization": 0.05, "iterations": 15}')
    parser.add_argument("--no-write", action="store_true", help="Do not update bench/RESULTS.md.")
    args = parser.parse_args()
    params = json.loads(args.params)

    database_ensure(args.database_url)
    seed(args.database_url, users=args.users, products=args.products, interactions=args.interactions)

    os.environ["DATABASE_URL"] = args.database_url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "shop.settings")
    import django

    django.setup()
    from implicit.cpu.als import AlternatingLeastSquares
    from threadpoolctl import threadpool_limits

    from recommendations import services, training_data
    from recommendations.engine import DEFAULT_KIND_WEIGHTS

    started = machine()
    rows = []
    for run in range(1, args.runs + 1):
        version = services.model_version_create(algorithm=args.algorithm, params=params)
        tic = time.perf_counter()
        version = services.model_train(version_id=version.pk)
        wall = time.perf_counter() - tic
        if version.status != "succeeded":
            sys.exit(f"training failed: {version.error}")
        t = version.timings
        # the reference: the same matrix, the same parameters, implicit's own fit
        matrix = training_data.interaction_matrix_build(kinds=sorted(DEFAULT_KIND_WEIGHTS)).matrix()
        bare = AlternatingLeastSquares(
            factors=params.get("factors", 64),
            regularization=params.get("regularization", 0.05),
            iterations=params.get("iterations", 15),
            random_state=0,
            calculate_training_loss=False,
        )
        with threadpool_limits(1, "blas"):
            tic = time.perf_counter()
            bare.fit(matrix.user_items, show_progress=False)
            bare_s = time.perf_counter() - tic
        row = {
            "run": run,
            "version": version.pk,
            "interactions": version.n_interactions,
            "read": t["read"],
            "rows_per_s": version.n_interactions / t["read"],
            "prepare": t["prepare"],
            "evaluate": t["evaluate"],
            "fit": t["fit"],
            "artifact": t["artifact"],
            "total": wall,
            "bare": bare_s,
            "ndcg": version.ndcg,
        }
        row["budget"] = 1.5 * bare_s + 10
        rows.append(row)
        print(json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in row.items()}), flush=True)

    med = {k: median([r[k] for r in rows]) for k in rows[0] if isinstance(rows[0][k], (int, float))}
    ratio = med["total"] / med["bare"]
    ok_total = med["total"] <= 1.5 * med["bare"] + 10
    ok_read = med["rows_per_s"] >= 500_000
    table = [
        "| run | DB → matrix (s) | rows/s | prepare (s) | holdout evaluation (s) | fit on all (s) | artifact (s) "
        "| **total (s)** | bare implicit ALS fit (s) | budget 1.5×bare+10 (s) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows + [{**med, "run": "**median**"}]:
        table.append(
            f"| {r['run']} | {r['read']:.2f} | {r['rows_per_s']:,.0f} | {r['prepare']:.2f} | {r['evaluate']:.2f} "
            f"| {r['fit']:.2f} | {r['artifact']:.2f} | **{r['total']:.2f}** | {r['bare']:.2f} | {r['budget']:.2f} |"
        )
    body = f"""
`bench/train.py` — {rows[0]["interactions"]:,} interactions ({args.users:,} customers, {args.products:,} products,
power-law popularity, `manage.py seed_synthetic`) in PostgreSQL; algorithm `{args.algorithm}` {json.dumps(params)};
{args.runs} runs, {started}. "total" is the whole `model_train` run (streaming read, holdout evaluation on a bounded
sample, fit on all data, `.npz` artifact, activation); "bare" is `implicit`'s ALS fit on the same matrix in the same
process (BLAS limited to one thread, as the engine does).

{chr(10).join(table)}

- total / bare fit: **{ratio:.2f}×** (median); goal total ≤ 1.5 × bare + 10 s: **{"met" if ok_total else "NOT met"}**
  ({med["total"]:.1f} s vs {1.5 * med["bare"] + 10:.1f} s).
- database read: **{med["rows_per_s"]:,.0f} rows/s** (PostgreSQL `COPY … TO STDOUT (FORMAT BINARY)` parsed with numpy);
  goal ≥ 500,000 rows/s: **{"met" if ok_read else "NOT met"}**.
- holdout NDCG@10 of the trained model: {med["ndcg"]:.4f} (synthetic data: random tastes, only a sanity check).
"""
    print(body)
    if not args.no_write:
        results_section_write("Training cost", body)


if __name__ == "__main__":
    main()
