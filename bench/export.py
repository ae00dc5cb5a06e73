#!/usr/bin/env python
"""The export of every customer's recommendations (``manage.py recommend --all``).

A synthetic store of 100,000 customers, 20,000 products and 2,000,000 interactions
(power-law popularity; ``manage.py seed_synthetic``) in PostgreSQL, an active ALS
model trained on it through the real path (``model_train``), then ``--runs`` timed
exports of the top 10 of every customer to a CSV file, in this process through
``call_command`` (the first run also loads the model artifact). Reports the wall
time of each run, customers per second, rows written, and the median; the goal is
at least 5,000 customers/s.

    .venv/bin/python bench/export.py                # 3 runs, writes bench/RESULTS.md
    .venv/bin/python bench/export.py --runs 1 --no-write
    BENCH_DATABASE_URL=postgres://... .venv/bin/python bench/export.py
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench._rec_common import database_ensure, machine, median, results_section_write, seed  # noqa: E402

DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/affinity_bench_export"
GOAL = 5_000  # customers per second


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL", DEFAULT_URL))
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--products", type=int, default=20_000)
    parser.add_argument("--interactions", type=int, default=2_000_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--n", type=int, default=10)
    parser.add_argument("--params", default='{"factors": 64, "regularization": 0.05, "iterations": 15}')
    parser.add_argument("--retrain", action="store_true", help="Train a new model even if an ALS one is active.")
    parser.add_argument("--no-write", action="store_true", help="Do not update bench/RESULTS.md.")
    args = parser.parse_args()

    database_ensure(args.database_url)
    seed(args.database_url, users=args.users, products=args.products, interactions=args.interactions)

    os.environ["DATABASE_URL"] = args.database_url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "shop.settings")
    import django

    django.setup()
    from django.core.management import call_command

    from recommendations import services
    from recommendations.models import ModelVersion
    from shop.models import User

    active = ModelVersion.objects.filter(is_active=True, algorithm="als").order_by("-pk").first()
    if active is None or args.retrain:
        version = services.model_version_create(algorithm="als", params=json.loads(args.params))
        tic = time.perf_counter()
        active = services.model_train(version_id=version.pk)
        print(f"trained als#{active.pk} in {time.perf_counter() - tic:.1f}s: {active.status}", flush=True)
        if active.status != "succeeded" or not active.is_active:
            sys.exit(f"training did not give an active model: {active.status} {active.error}")
    customers = User.objects.filter(is_active=True, is_staff=False).count()
    started = machine()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        out_path = Path(tmp) / "recs.csv"
        for run in range(1, args.runs + 1):
            out = io.StringIO()
            tic = time.perf_counter()
            call_command(
                "recommend", "--all", "--n", str(args.n), "--out", str(out_path), stdout=out, stderr=io.StringIO()
            )
            wall = time.perf_counter() - tic
            with out_path.open() as fh:
                written = sum(1 for _ in fh) - 1
            row = {"run": run, "wall": wall, "per_s": customers / wall, "rows": written}
            rows.append(row)
            print(json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in row.items()}), flush=True)
    med_wall = median([r["wall"] for r in rows])
    med_rate = customers / med_wall
    table = ["| run | wall (s) | customers/s | rows written |", "|---|---|---|---|"]
    for r in rows:
        table.append(f"| {r['run']} | {r['wall']:.2f} | {r['per_s']:,.0f} | {r['rows']:,} |")
    table.append(f"| **median** | **{med_wall:.2f}** | **{med_rate:,.0f}** | |")
    body = f"""
`bench/export.py` — `manage.py recommend --all --n {args.n} --out FILE` over {customers:,} customers of a synthetic
store ({args.products:,} products, {args.interactions:,} interactions, `manage.py seed_synthetic`) in PostgreSQL,
with the active model als#{active.pk} {json.dumps(active.params)}; {args.runs} runs in one process (the first also
loads the artifact), {started}. The export (`recommend_for_users_batches`: 1,000 customers a batch, two batches at a
time in threads with one BLAS thread each) reads a batch's events in one query, folds them into the model, takes each
customer's top k with the engine's batch top-k (`top_k_batch`; ALS: an exact early-stopping scan over the items by
decreasing norm, block by block, for 512 customers at once), fills each list (filters, diversity, fallbacks), then
writes CSV.

{chr(10).join(table)}

- goal ≥ {GOAL:,} customers/s: **{"met" if med_rate >= GOAL else "NOT met"}** ({med_rate:,.0f} customers/s, median).
"""
    print(body)
    if not args.no_write:
        results_section_write("Export of every customer's recommendations", body)


if __name__ == "__main__":
    main()
