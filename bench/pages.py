"""Storefront page benchmark: how long each page of the store takes to render on the
imported Online Retail store (3,787 products, 4,334 customers, 2.4 M interactions).

What runs (all real): the whole Django request path in-process — middleware,
sessions and auth in the database, the view, its selectors and the recommendations
service (the active model if one is trained, else its fallbacks), impressions and
events written, the template rendered — through Django's test ``Client`` against
PostgreSQL and Redis. No network and no WSGI server: this is the page's render cost,
the number the store promises (< 100 ms at the median). Every request of a kind is
a different shopper or product, picked at random from the imported data.

Two configurations in one run: serving with the active model (the demo store's
normal state: ``bootstrap_demo`` trains one) and serving on the fallbacks alone
(no model: history categories, co-purchases, interests, trending), the state of a
store before its first training. The second is measured by deactivating the model
inside the rolled-back transaction.

Reference in the same run: ``/health/live`` (the same middleware stack and a JSON
response: Django's floor on this machine) and rendering ``base.html`` alone (the
layout with the category menu and cart count, no content).

Everything the run writes (sessions, views, clicks, impressions, carts) happens
inside one transaction that is rolled back at the end, so the demo store is left as
it was; services' own transactions become savepoints, a little extra work that
is counted in the times.

Usage::

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/affinity_store \\
    REDIS_URL=redis://127.0.0.1:6379/5 .venv/bin/python bench/pages.py --samples 60 --rounds 3

The store must hold the Online Retail import (``manage.py import_online_retail``).
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "shop.settings")


@dataclass
class Series:
    name: str
    times_ms: list[float] = field(default_factory=list)
    queries: list[int] = field(default_factory=list)
    statuses: set[int] = field(default_factory=set)

    def row(self) -> str:
        t = sorted(self.times_ms)
        p95 = t[min(len(t) - 1, int(round(0.95 * (len(t) - 1))))]
        return (
            f"| {self.name} | {len(t)} | {statistics.median(t):.1f} | {p95:.1f} | {max(t):.1f} | "
            f"{statistics.median(self.queries):.0f} (max {max(self.queries)}) | "
            f"{', '.join(str(s) for s in sorted(self.statuses))} |"
        )


class Bench:
    def __init__(self, *, seed: int):
        from django.db import connection

        self.connection = connection
        self.rng = random.Random(seed)
        self.series: dict[str, Series] = {}

    def measure(self, name: str, fn: Callable[[], int]) -> None:
        from django.test.utils import CaptureQueriesContext

        with CaptureQueriesContext(self.connection) as ctx:
            start = time.perf_counter()
            status = fn()
            elapsed = (time.perf_counter() - start) * 1000
        s = self.series.setdefault(name, Series(name))
        s.times_ms.append(elapsed)
        s.queries.append(len(ctx.captured_queries))
        s.statuses.add(status)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=60, help="requests per page kind and round")
    parser.add_argument("--rounds", type=int, default=3, help="rounds (the median of all samples is reported)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--modes",
        default="model,fallback",
        help="comma-separated: model (the active model serves), fallback (no model)",
    )
    args = parser.parse_args()

    import django

    django.setup()
    from django.conf import settings
    from django.contrib.auth.models import AnonymousUser
    from django.contrib.sessions.backends.db import SessionStore
    from django.db import connection, transaction
    from django.db.models import Count
    from django.template.loader import render_to_string
    from django.test import Client, RequestFactory

    from shop import selectors
    from shop.models import Category, Product, User

    n_products = Product.objects.filter(is_active=True).count()
    if n_products < 1000:
        sys.exit(f"The store holds {n_products} products: import the demo data first (manage.py import_online_retail).")
    from recommendations import services as rec

    settings.ALLOWED_HOSTS = ["testserver", *settings.ALLOWED_HOSTS]
    settings.DEBUG = False
    connection.force_debug_cursor = False

    products = list(Product.objects.filter(is_active=True, stock__gt=0).values_list("slug", flat=True))
    product_ids = list(Product.objects.filter(is_active=True, stock__gt=0).values_list("pk", flat=True))
    categories = list(Category.objects.values_list("slug", flat=True))
    customers = list(
        User.objects.filter(is_staff=False, orders__isnull=False)
        .annotate(n=Count("orders"))
        .filter(n__gte=2)
        .values_list("pk", flat=True)[:2000]
    )
    words = [
        w
        for name in Product.objects.values_list("name", flat=True)[:2000]
        for w in selectors.search_terms(name)
        if len(w) > 3
    ]
    from recommendations.models import ModelVersion

    print(f"store: {n_products} products, {len(categories)} categories, {len(customers)} customers sampled")
    factory = RequestFactory()

    def logged_in(user_id: int) -> Client:
        c = Client()
        c.force_login(User.objects.get(pk=user_id))
        return c

    def get(client: Client, url: str, **params) -> int:
        return client.get(url, params).status_code

    def render_layout() -> int:
        request = factory.get("/")
        request.user = AnonymousUser()
        request.session = SessionStore()
        render_to_string("base.html", request=request)
        return 200

    def run(bench: Bench) -> None:
        rng = bench.rng
        # warm-up: model load, trending, the category cache, template loading
        warm = Client()
        for url in ("/", f"/category/{categories[0]}/", f"/product/{products[0]}/", "/search/?q=heart"):
            warm.get(url)
        for _ in range(args.rounds):
            for _ in range(args.samples):
                bench.measure("floor: /health/live", lambda: get(Client(), "/health/live"))
                bench.measure("floor: base.html alone", render_layout)
                bench.measure("home, new visitor", lambda: get(Client(), "/"))
                customer = logged_in(rng.choice(customers))
                bench.measure("home, customer with history", lambda: get(customer, "/"))
                bench.measure("category page 1", lambda: get(Client(), f"/category/{rng.choice(categories)}/"))
                bench.measure(
                    "category, filtered + sorted, page 2",
                    lambda: get(
                        Client(),
                        f"/category/{rng.choice(categories)}/",
                        min_price="1",
                        max_price="10",
                        in_stock="on",
                        sort=rng.choice(["price_asc", "price_desc", "newest"]),
                        page=2,
                    ),
                )
                bench.measure("search", lambda: get(Client(), "/search/", q=rng.choice(words)))
                visitor = Client()
                bench.measure("product, anonymous", lambda: get(visitor, f"/product/{rng.choice(products)}/"))
                bench.measure("product, customer", lambda: get(customer, f"/product/{rng.choice(products)}/"))
                for pid in rng.sample(product_ids, 3):
                    customer.post("/cart/add/", {"product": pid, "quantity": 1})
                bench.measure("cart (3 items)", lambda: get(customer, "/cart/"))
                bench.measure("account orders", lambda: get(customer, "/account/"))
                bench.measure("product image (SVG)", lambda: get(visitor, f"/img/p/{rng.choice(product_ids)}.svg"))

    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    unknown = set(modes) - {"model", "fallback"}
    if unknown:
        sys.exit(f"unknown mode(s) {sorted(unknown)}: use model and/or fallback")
    for mode in modes:
        with transaction.atomic():
            active = list(ModelVersion.objects.filter(is_active=True))
            if mode == "model" and not active:
                print("\nmode model: no active model (train one: manage.py train); skipped")
                transaction.set_rollback(True)
                continue
            if mode == "fallback":
                for version in active:
                    rec.model_version_deactivate(version=version)
            probe = rec.recommend_for_user(
                context="home", n=8, record_impression=False, user=User.objects.get(pk=customers[0])
            )
            bench = Bench(seed=args.seed)
            run(bench)
            transaction.set_rollback(True)  # leave the demo store as it was
        report(mode, probe.strategy, bench)


def report(mode: str, strategy: str, bench: Bench) -> None:
    print(f"\n### {mode}: a customer's home list came from {strategy}\n")
    print("| page | n | median ms | p95 ms | max ms | queries | status |")
    print("|---|---|---|---|---|---|---|")
    for s in bench.series.values():
        print(s.row())
    floor = statistics.median(bench.series["floor: /health/live"].times_ms)
    pages = [s for name, s in bench.series.items() if not name.startswith("floor")]
    worst = max(pages, key=lambda s: statistics.median(s.times_ms))
    print()
    print(
        f"slowest page at the median: {worst.name}, {statistics.median(worst.times_ms):.1f} ms "
        f"({statistics.median(worst.times_ms) / floor:.0f}x the /health/live floor of {floor:.1f} ms)"
    )


if __name__ == "__main__":
    main()
