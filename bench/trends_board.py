"""The live trends board on a real store: how long a refresh and the predicted
audiences take, and what the board shows.

Needs a database holding a store (the demo: ``manage.py bootstrap_demo``) and an
active model (``manage.py train --algorithm ease``); run from the repository root::

    DATABASE_URL=postgres://.../affinity_demo .venv/bin/python bench/trends_board.py [--no-write]

Times (median of 3, after one warm-up for the process's content model):
``trends_board`` for 24 hours, 7 and 28 days; ``likely_buyers_many`` of the board's top
8 products, size 200, the cache off (what the page's new-products table costs when
events have arrived since the last answer) and on (the same answer again).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "shop.settings")

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402

from recommendations import trends  # noqa: E402
from shop.models import Interaction, Product, User  # noqa: E402

RESULTS = ROOT / "bench" / "RESULTS.md"


def timed(fn, repeats: int = 3) -> tuple[float, object]:
    result = fn()
    times = []
    for _ in range(repeats):
        tic = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - tic)
    return statistics.median(times), result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args(argv)
    size = (Interaction.objects.count(), Product.objects.count(), User.objects.count())
    print(f"{size[0]} interactions, {size[1]} products, {size[2]} accounts")
    lines = ["| what | median |", "|---|---:|"]
    tops = []
    for hours in (24, 168, 672):
        seconds, board = timed(lambda h=hours: trends.trends_board(window_hours=h))
        lines.append(f"| board refresh, recent window {hours} h | {seconds * 1000:.0f} ms |")
        tops.append(
            f"- {hours} h: "
            + ", ".join(f"{r.name} ({r.recent} vs {r.expected:.1f} expected, z {r.z:.1f})" for r in board.products[:3])
        )
        print(lines[-1])
    products = [r.id for r in trends.trends_board().products[:8]]
    settings.AFFINITY_AUDIENCE_CACHE_SECONDS = 0
    cold, found = timed(lambda: trends.likely_buyers_many(product_ids=products, size=200))
    settings.AFFINITY_AUDIENCE_CACHE_SECONDS = 600
    warm, _ = timed(lambda: trends.likely_buyers_many(product_ids=products, size=200))
    methods = sorted({f"{f.method} {f.model}" for f in found.values()})
    lines.append(f"| likely buyers of 8 products, top 200 ({', '.join(methods)}), computed | {cold * 1000:.0f} ms |")
    lines.append(f"| the same, from the cache | {warm * 1000:.0f} ms |")
    table = "\n".join(lines)
    print(table)
    print("\n".join(tops))
    if not args.no_write:
        with RESULTS.open("a", encoding="utf-8") as handle:
            handle.write(
                f"""
## Live trends board on the demo store

`.venv/bin/python bench/trends_board.py` ({platform.machine()}, {time.strftime("%Y-%m-%d")}; PostgreSQL,
{size[0]} interactions, {size[1]} products, {size[2]} accounts; 2 shared cores). The page polls the board every
15 s and the new products' audiences every 5 minutes.

{table}

Top rising products (the windows end at the newest event, 2011-12-09):
{chr(10).join(tops)}
"""
            )
        print(f"appended to {RESULTS}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
