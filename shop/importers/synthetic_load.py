"""Write a generated synthetic store (the ``seed_synthetic`` work).

One transaction: categories, products, customers (with their consent recorded),
orders and lines, then the events through `shop.services.interactions.interactions_bulk_copy`.
Keys carry the seed (SKU ``SYN<seed>-0000001``, customer ``syn<seed>-1``, order
``SYN<seed>-o1``), so two seeds can share a database and a seed is never loaded twice.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal

import numpy as np
from django.conf import settings
from django.contrib.auth.hashers import make_password
from django.db import transaction
from django.utils.text import slugify

from shop.bulk import rows_bulk_insert, tables_bulk_load
from shop.models import ConsentChange, Interaction, Order, OrderLine, Product, User
from shop.services.interactions import interactions_bulk_copy

from . import synthetic
from .catalogue import describe
from .common import ModelRows, PhaseTimer, ProgressFactory, category_tree_ensure, no_progress

UTC = UTC
CHUNK = 100_000


class SyntheticExists(ValueError):
    pass


@dataclass
class SeedReport:
    created: dict = field(default_factory=dict)
    by_kind: dict = field(default_factory=dict)
    top1_share: float = 0.0
    bulk_load: bool = False
    timings: dict = field(default_factory=dict)

    def lines(self) -> list[str]:
        return [
            "Created: " + ", ".join(f"{k} {v:,}" for k, v in self.created.items()),
            "Events: "
            + ", ".join(f"{k} {v:,}" for k, v in self.by_kind.items())
            + f"; the top 1% of products have {self.top1_share:.0%} of them",
            "Time: "
            + ", ".join(f"{k} {v:.1f}s" for k, v in self.timings.items())
            + (" (indexes rebuilt after the load)" if self.bulk_load else ""),
        ]


def sku_for(seed: int, i: int) -> str:
    return f"SYN{seed}-{i + 1:07d}"


def _times(us: np.ndarray) -> list[datetime]:
    return [d.replace(tzinfo=UTC) for d in us.astype("datetime64[us]").tolist()]


def synthetic_seed(
    *,
    users: int,
    products: int,
    interactions: int,
    seed: int = 0,
    categories: int = 20,
    days: int = 180,
    end: datetime | None = None,
    progress: ProgressFactory = no_progress,
) -> SeedReport:
    now = datetime.now(UTC)
    if end is not None and end > now:
        raise ValueError(f"the end date {end:%Y-%m-%d} is in the future")
    prefix_user, prefix_sku = f"syn{seed}-", f"SYN{seed}-"
    if (
        User.objects.filter(external_id__startswith=prefix_user).exists()
        or Product.objects.filter(sku__startswith=prefix_sku).exists()
    ):
        raise SyntheticExists(f"a synthetic store with seed {seed} is already in this database; use another --seed")
    report = SeedReport()
    lap = PhaseTimer(report.timings)

    store = synthetic.generate(
        users=users, products=products, interactions=interactions, seed=seed, categories=categories, days=days, end=end
    )
    counts = np.bincount(store.event_product, minlength=products)
    top = np.sort(counts)[::-1][: max(1, products // 100)]
    report.top1_share = float(top.sum() / max(1, counts.sum()))
    kinds = np.bincount(store.event_kind, minlength=8)
    report.by_kind = {
        "view": int(kinds[synthetic.VIEW]),
        "add_to_cart": int(kinds[synthetic.ADD_TO_CART]),
        "purchase": int(kinds[synthetic.PURCHASE]),
    }
    lap("generate")

    with transaction.atomic():
        cat_ids, created = category_tree_ensure(paths=store.categories)
        report.created["categories"] = created

        # --- products -------------------------------------------------------------------
        spec = ModelRows(
            Product, ["sku", "name", "slug", "description", "category_id", "price", "stock", "created_at", "attributes"]
        )
        start = datetime.fromtimestamp(int(store.event_time_us.min()) / 1e6, UTC) if interactions else now

        def product_rows():
            for i in range(products):
                sku = sku_for(seed, i)
                path = store.categories[store.product_category[i]]
                name = store.product_name[i]
                yield spec.expand(
                    (
                        sku,
                        name,
                        f"{slugify(name)[:200]}-{sku.lower()}",
                        describe(name=name, category_path=path, key=sku),
                        cat_ids[path],
                        Decimal(int(store.product_price_pence[i])) / 100,
                        int(store.product_stock[i]),
                        start,
                        {"synthetic_seed": seed},
                    )
                )

        with tables_bulk_load(models=[Product], expected_rows=products):
            rows_bulk_insert(model=Product, fields=spec.fields, rows=product_rows())
        product_pk = np.zeros(products, dtype=np.int64)
        for sku, pk in Product.objects.filter(sku__startswith=prefix_sku).values_list("sku", "pk").iterator(10_000):
            product_pk[int(sku.rsplit("-", 1)[1]) - 1] = pk
        report.created["products"] = products
        lap("products")

        # --- customers and their consent --------------------------------------------------
        spec = ModelRows(
            User,
            [
                "email",
                "first_name",
                "last_name",
                "country",
                "external_id",
                "password",
                "marketing_consent",
                "consent_changed_at",
                "date_joined",
            ],
        )
        unusable = make_password(None)
        domain = settings.AFFINITY_DEMO_EMAIL_DOMAIN
        joined = _times(store.user_joined_us)
        consent = store.user_consent.tolist()
        rows_bulk_insert(
            model=User,
            fields=spec.fields,
            rows=(
                spec.expand(
                    (
                        f"syn{seed}.{i + 1}@{domain}",
                        store.user_first[i],
                        store.user_last[i],
                        store.user_country[i],
                        f"{prefix_user}{i + 1}",
                        unusable,
                        consent[i],
                        joined[i],
                        joined[i],
                    )
                )
                for i in range(users)
            ),
        )
        user_pk = np.zeros(users, dtype=np.int64)
        for ext, pk in (
            User.objects.filter(external_id__startswith=prefix_user).values_list("external_id", "pk").iterator(10_000)
        ):
            user_pk[int(ext[len(prefix_user) :]) - 1] = pk
        spec = ModelRows(ConsentChange, ["user_id", "consent", "source", "changed_at"])
        rows_bulk_insert(
            model=ConsentChange,
            fields=spec.fields,
            rows=(
                spec.expand((int(user_pk[i]), consent[i], ConsentChange.Source.IMPORT, joined[i])) for i in range(users)
            ),
        )
        report.created["customers"] = users
        report.created["consent records"] = users
        del joined
        lap("customers")

        # --- orders, lines, events ----------------------------------------------------------
        n_orders = len(store.order_user)
        price = store.product_price_pence
        totals = np.zeros(n_orders, dtype=np.int64)
        np.add.at(totals, store.line_order, price[store.line_product] * store.line_quantity)
        spec = ModelRows(Order, ["external_id", "user_id", "status", "total", "currency", "country", "placed_at"])
        order_times = _times(store.order_time_us)
        countries = store.user_country
        rows_bulk_insert(
            model=Order,
            fields=spec.fields,
            rows=(
                spec.expand(
                    (
                        f"{prefix_sku}o{j + 1}",
                        int(user_pk[store.order_user[j]]),
                        Order.Status.SHIPPED,
                        Decimal(int(totals[j])) / 100,
                        "GBP",
                        countries[store.order_user[j]],
                        order_times[j],
                    )
                )
                for j in range(n_orders)
            ),
        )
        order_pk = np.zeros(n_orders, dtype=np.int64)
        for ext, pk in (
            Order.objects.filter(external_id__startswith=f"{prefix_sku}o")
            .values_list("external_id", "pk")
            .iterator(10_000)
        ):
            order_pk[int(ext[len(prefix_sku) + 1 :]) - 1] = pk
        report.created["orders"] = n_orders
        lap("orders")

        expected = interactions + len(store.line_order)
        with tables_bulk_load(models=[Interaction, OrderLine], expected_rows=expected) as report.bulk_load:
            line_price = [Decimal(int(p)) / 100 for p in price[store.line_product].tolist()]
            rows_bulk_insert(
                model=OrderLine,
                fields=["order_id", "product_id", "quantity", "unit_price"],
                rows=zip(
                    order_pk[store.line_order].tolist(),
                    product_pk[store.line_product].tolist(),
                    store.line_quantity.tolist(),
                    line_price,
                ),
            )
            report.created["order lines"] = len(line_price)
            bar = progress(total=interactions, desc="interactions", unit="rows")
            source = Interaction.Source.IMPORT

            def events():
                for a in range(0, interactions, CHUNK):
                    b = min(interactions, a + CHUNK)
                    yield from zip(
                        user_pk[store.event_user[a:b]].tolist(),
                        [""] * (b - a),
                        product_pk[store.event_product[a:b]].tolist(),
                        store.event_kind[a:b].tolist(),
                        store.event_value[a:b].tolist(),
                        _times(store.event_time_us[a:b]),
                        [source] * (b - a),
                    )
                    bar.update(b - a)

            report.created["interactions"] = interactions_bulk_copy(rows=events())
            bar.close()
            lap("orders lines and interactions")
        if report.bulk_load:
            lap("index rebuild")
    lap("commit")
    return report
