#!/usr/bin/env python
"""The data report's cost and the noise filter's effect on held-out NDCG (issue 16).

The demo store (the bundled Online Retail data, ``manage.py import_online_retail``)
in a PostgreSQL database of the benchmark's own. Then:

1. ``report_build`` (what ``manage.py data_quality`` and the admin page run) on the
   clean store, with the time of each check;
2. a bot population injected as customers -- 5% of all actors by default -- of
   four kinds: *scrapers* (hundreds of different products viewed in two hours),
   *replayers* (a stuck client sending views and cart events of ten products again
   and again in one hour), *slow crawlers* (60 views a day for five days: below
   the rate and breadth thresholds) and, two in five, *price watchers* (all of them
   checking one shared list of 40 products three times a day for two days: the
   kind that moves popularity and co-occurrence); the report again, and how many
   of each kind the rules catch (and how many real customers they catch by mistake);
3. held-out NDCG@10 of each algorithm trained on (a) the clean events, (b) the
   events with the bots, (c) the events with the bots after the noise filter --
   one fixed temporal split of the real customers' events, the bots' events before
   the cutoff added to the training part, the real customers judged with serving's
   exclusions. Bots are never judged.

    .venv/bin/python bench/data_quality.py                 # prints a markdown section
    .venv/bin/python bench/data_quality.py --bots 0.05 --algorithms ease,item_knn,popularity
    BENCH_DATABASE_URL=postgres://... .venv/bin/python bench/data_quality.py
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench._rec_common import counts, database_ensure, machine, manage  # noqa: E402

DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/affinity_bench_data_quality"
BOT_DOMAIN = "bots.bench.example"
KINDS = ("scraper", "replayer", "crawler", "watcher", "watcher")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL", DEFAULT_URL))
    parser.add_argument("--bots", type=float, default=0.05, help="bots as a share of all actors (default 0.05)")
    parser.add_argument("--algorithms", default="ease,item_knn,popularity")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if not 0 < args.bots < 0.5:
        raise SystemExit("--bots must be a share between 0 and 0.5")

    database_ensure(args.database_url)
    if counts(args.database_url)["shop_interaction"] == 0:
        manage("import_online_retail", "--no-progress", env={"DATABASE_URL": args.database_url}, quiet=True)
    os.environ["DATABASE_URL"] = args.database_url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "shop.settings")
    import django

    django.setup()
    run(args)


def run(args) -> None:
    import numpy as np
    from django.conf import settings

    from recommendations import data_quality, noise, training
    from recommendations.engine import base as engine_base
    from recommendations.engine.evaluation import evaluate
    from recommendations.training_data import interaction_matrix_build
    from shop.models import Interaction, User

    settings.AFFINITY_TRAIN_EVAL_MAX_USERS = 10**6
    rng = np.random.default_rng(args.seed)
    # the bots of an earlier run go first (this database is the benchmark's own)
    Interaction.objects.filter(user__email__endswith=f"@{BOT_DOMAIN}").delete()
    User.objects.filter(email__endswith=f"@{BOT_DOMAIN}").delete()

    print("1. the report on the demo store ...", flush=True)
    clean_report = data_quality.report_build()
    real_customers = set(Interaction.objects.filter(user__isnull=False).values_list("user_id", flat=True).distinct())
    actors = (
        len(real_customers) + Interaction.objects.filter(user__isnull=True).values("session_key").distinct().count()
    )
    false_before = noise.noise_find()

    print("2. injecting bots ...", flush=True)
    n_bots = int(round(args.bots * actors / (1 - args.bots)))
    product_ids = np.array(list(Interaction.objects.values_list("product_id", flat=True).distinct()))
    first, last = (
        Interaction.objects.order_by("occurred_at").values_list("occurred_at", flat=True).first(),
        Interaction.objects.order_by("-occurred_at").values_list("occurred_at", flat=True).first(),
    )
    span = (last - first).total_seconds()
    kinds_of = {}
    bots = User.objects.bulk_create(
        [User(email=f"bot{i}@{BOT_DOMAIN}", first_name="Bot", last_name=str(i)) for i in range(n_bots)]
    )
    rows: list[Interaction] = []
    watched = rng.choice(product_ids, size=40, replace=False)  # the price watchers' shared list
    for i, bot in enumerate(bots):
        kind = KINDS[i % len(KINDS)]
        kinds_of[bot.pk] = kind
        start = first + timedelta(seconds=float(rng.uniform(0, span - 6 * 86400)))
        if kind == "watcher":
            for day in range(2):
                for round_ in range(3):
                    at = start + timedelta(days=day, hours=9 + 4 * round_)
                    rows += [
                        Interaction(user=bot, product_id=int(p), kind=1, occurred_at=at + timedelta(seconds=20 * j))
                        for j, p in enumerate(watched)
                    ]
        elif kind == "scraper":
            items = rng.choice(product_ids, size=int(rng.integers(400, 900)), replace=False)
            times = np.sort(rng.uniform(0, 7200, items.size))
            rows += [
                Interaction(user=bot, product_id=int(p), kind=1, occurred_at=start + timedelta(seconds=float(t)))
                for p, t in zip(items, times, strict=True)
            ]
        elif kind == "replayer":
            items = rng.choice(product_ids, size=10, replace=False)
            n = int(rng.integers(300, 600))
            times = np.sort(rng.uniform(0, 3600, n))
            rows += [
                Interaction(
                    user=bot,
                    product_id=int(items[j % 10]),
                    kind=1 if j % 2 == 0 else 3,
                    occurred_at=start + timedelta(seconds=float(t)),
                )
                for j, t in enumerate(times)
            ]
        else:
            for day in range(5):
                items = rng.choice(product_ids, size=60, replace=False)
                times = np.sort(rng.uniform(8 * 3600, 23 * 3600, 60))
                rows += [
                    Interaction(
                        user=bot, product_id=int(p), kind=1, occurred_at=start + timedelta(days=day, seconds=float(t))
                    )
                    for p, t in zip(items, times, strict=True)
                ]
    Interaction.objects.bulk_create(rows, batch_size=20_000)
    bot_ids = np.array(sorted(kinds_of), dtype=np.int64)
    print(f"   {n_bots} bots, {len(rows):,} events", flush=True)

    print("3. the report with the bots ...", flush=True)
    bot_report = data_quality.report_build()
    found = noise.noise_find()
    caught = dict.fromkeys(KINDS, 0)
    total = dict.fromkeys(KINDS, 0)
    for pk, kind in kinds_of.items():
        total[kind] += 1
        caught[kind] += pk in found.users
    wrongly = sorted(set(found.users) & real_customers)

    print("4. held-out NDCG@10: clean, with bots, filtered ...", flush=True)
    events = interaction_matrix_build(kinds=sorted(training.kind_weights_parse(None)))
    data = training.data_prepare(events, side_text=False)
    is_bot = np.isin(events.users, bot_ids)
    protocol, cutoff = training._protocol(data, ~is_bot, "")
    train_mask, test_mask, now = training._split(data, ~is_bot, protocol.name, cutoff, seed=args.seed)
    users = np.unique(events.users)
    relevant = training._relevant_matrix(data, test_mask, user_ids=users).user_items
    exclude = training._excluded_matrix(data, train_mask, user_ids=users, now=now)
    bot_train = is_bot & (events.times <= now)
    dropped = np.isin(events.users, np.asarray(found.user_ids, dtype=np.int64))
    variants = {
        "clean": train_mask,
        "with bots": train_mask | bot_train,
        "with bots, filtered": (train_mask | bot_train) & ~dropped,
    }
    ndcg: dict[str, dict[str, float]] = {}
    harm: dict[str, dict[str, float]] = {}
    watched_cols = np.isin(data.item_ids, watched)
    popular_clean = None
    for name, mask in variants.items():
        # what shoppers see without a model: the 20 most popular products, and the
        # "similar products" of the 300 most popular (item-kNN neighbours)
        train = training._matrix(data, mask, now=now, user_ids=users)
        users_per_item = np.bincount(train.user_items.indices, minlength=data.item_ids.size)
        top = np.argsort(-users_per_item, kind="stable")
        popular_clean = top if popular_clean is None else popular_clean
        knn = engine_base.algorithm_build("item_knn").fit(train.user_items)
        neighbours, _ = knn.similar_items(popular_clean[:300], n=10)
        filled = neighbours >= 0
        harm[name] = {
            "watched_in_top20": int(watched_cols[top[:20]].sum()),
            "top20_overlap": len(set(top[:20].tolist()) & set(popular_clean[:20].tolist())) / 20,
            "watched_neighbours": float(watched_cols[neighbours[filled]].mean()) if filled.any() else 0.0,
        }
    for algorithm in args.algorithms.split(","):
        ndcg[algorithm] = {}
        for name, mask in variants.items():
            tic = time.perf_counter()
            train = training._matrix(data, mask, now=now, user_ids=users)
            model = engine_base.algorithm_build(algorithm).fit(train.user_items, training._side(data, mask, now))
            result = evaluate(model, train, relevant, k=10, exclude_train=False, exclude=exclude)
            ndcg[algorithm][name] = result["ndcg"]
            print(f"   {algorithm:12s} {name:22s} NDCG@10 {result['ndcg']:.4f} ({time.perf_counter() - tic:.1f}s)")

    # ---- markdown
    print()
    print("## Data report and noise filter (issue 16)\n")
    print(f"`.venv/bin/python bench/data_quality.py --bots {args.bots}` ({time.strftime('%Y-%m-%d')}). {machine()}")
    print(
        f"The demo store (Online Retail import): {clean_report.events:,} events, {len(real_customers):,} customers.\n"
    )
    print("| report | events | seconds | slowest checks |")
    print("|---|---|---|---|")
    for label, rep in (("demo store", clean_report), ("demo store + bots", bot_report)):
        slow = ", ".join(f"{k} {v:.1f}s" for k, v in sorted(rep.timings.items(), key=lambda kv: -kv[1])[:3])
        print(f"| {label} | {rep.events:,} | {rep.seconds:.1f} | {slow} |")
    print(
        f"\nBots injected: {n_bots} customers ({args.bots:.0%} of {actors + n_bots:,} actors), {len(rows):,} events. "
        f"Caught by the default rules: scrapers {caught['scraper']}/{total['scraper']}, replayers "
        f"{caught['replayer']}/{total['replayer']}, slow crawlers {caught['crawler']}/{total['crawler']}, price "
        f"watchers {caught['watcher']}/{total['watcher']}; real customers "
        f"caught: {len(wrongly)} (before the injection the rules named {len(false_before.users)} customers and "
        f"{len(false_before.sessions)} sessions).\n"
    )
    print(
        f"Held-out NDCG@10 ({protocol.name} split of the real customers' events, {int(test_mask.sum()):,} held out):\n"
    )
    print("| algorithm | clean | with bots | with bots, filtered | bots vs clean | filtered vs clean |")
    print("|---|---|---|---|---|---|")
    for algorithm, row in ndcg.items():
        print(
            f"| {algorithm} | {row['clean']:.4f} | {row['with bots']:.4f} | {row['with bots, filtered']:.4f} | "
            f"{row['with bots'] / row['clean'] - 1:+.1%} | {row['with bots, filtered'] / row['clean'] - 1:+.1%} |"
        )
    print("\nWhat shoppers see without a model (the price watchers' 40 products):\n")
    print("| training data | watched products in the top 20 | top 20 as clean | watched among similar products |")
    print("|---|---|---|---|")
    for name, row in harm.items():
        print(f"| {name} | {row['watched_in_top20']} | {row['top20_overlap']:.0%} | {row['watched_neighbours']:.1%} |")


if __name__ == "__main__":
    main()
