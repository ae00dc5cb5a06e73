"""Export the top-n recommendations of every customer as CSV, with batched scoring.

    manage.py recommend --all --n 10 --out recs.csv
    manage.py recommend --user 12 --user 40 --strategy ease --out -

Columns: user (external id, or the id when there is none), rank, sku, score. The
customers are scored a batch at a time (`services.recommend_for_users_batches`: one
history read and one matrix product per batch, two batches at once on PostgreSQL);
customers without history get the serving fallbacks (interests, then trending), and
what a customer has (AFFINITY_CONSUMED_KINDS) is left out unless --include-consumed.
The merchandising rules of ``--placement`` (default "email", as campaigns) and the
global ones apply, as everywhere (``recommendations.rules``); `evaluate --rules` shows
each rule's effect on NDCG.
"""

from __future__ import annotations

import csv
import sys

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from recommendations import services
from shop.models import User


class Command(BaseCommand):
    help = "Write the top-n recommendations of customers to a CSV file."

    def add_arguments(self, parser):
        who = parser.add_mutually_exclusive_group(required=True)
        who.add_argument("--all", action="store_true", help="Every active customer (not staff).")
        who.add_argument("--user", type=int, action="append", help="A customer id (repeatable).")
        parser.add_argument("--n", type=int, default=10, help="Products per customer (1-100).")
        parser.add_argument("--out", required=True, help='Output file, or "-" for standard output.')
        parser.add_argument("--strategy", default=None, help='"auto" (default), an algorithm, "trending", "interests".')
        parser.add_argument("--batch-size", type=int, default=1000, help="Customers scored at once (default 1000).")
        parser.add_argument(
            "--placement",
            default="email",
            help='Whose merchandising rules apply (a placement key; default "email"; "" = the global ones only).',
        )
        parser.add_argument(
            "--workers",
            type=int,
            default=2,
            help="Batches scored at the same time, in threads (default 2; PostgreSQL only).",
        )
        parser.add_argument(
            "--include-consumed",
            "--include-purchased",
            dest="include_consumed",
            action="store_true",
            help="Keep products the customer already has (the kinds of AFFINITY_CONSUMED_KINDS: bought, "
            "rated); by default they are never recommended back.",
        )

    def handle(self, *args, **o):
        if not 1 <= o["n"] <= 100:
            raise CommandError(f"--n must be from 1 to 100, got {o['n']}")
        if o["batch_size"] < 1:
            raise CommandError("--batch-size must be at least 1")
        if o["workers"] < 1:
            raise CommandError("--workers must be at least 1")
        try:
            services.strategy_check(o["strategy"])
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        if o["placement"] and o["placement"] not in services.placements_all():
            raise CommandError(f"unknown placement {o['placement']!r}; use one of {sorted(services.placements_all())}")
        users = User.objects.filter(is_active=True, is_staff=False).order_by("id")
        if o["user"]:
            users = User.objects.filter(pk__in=o["user"]).order_by("id")
            missing = set(o["user"]) - set(users.values_list("id", flat=True))
            if missing:
                raise CommandError(f"unknown user id(s): {sorted(missing)}")
        names = {uid: external or uid for uid, external in users.values_list("id", "external_id")}
        out = sys.stdout if o["out"] == "-" else open(o["out"], "w", newline="", encoding="utf-8")  # noqa: SIM115
        rows = 0
        try:
            writer = csv.writer(out)
            writer.writerow(["user", "rank", "sku", "score"])
            with tqdm(
                total=len(names),
                unit="customer",
                desc="recommending",
                file=self.stderr,
                disable=o.get("verbosity", 1) == 0,
            ) as bar:
                for batch, picks in services.recommend_for_users_batches(
                    user_ids=list(names),
                    n=o["n"],
                    strategy=o["strategy"],
                    exclude_purchased=not o["include_consumed"],
                    batch_size=o["batch_size"],
                    workers=o["workers"],
                    placement=o["placement"],
                ):
                    lines = [
                        (names[uid], rank, pick.product.sku, f"{pick.score:.6f}")
                        for uid in batch
                        for rank, pick in enumerate(picks.get(uid, ()), start=1)
                    ]
                    writer.writerows(lines)
                    rows += len(lines)
                    bar.update(len(batch))
        finally:
            if out is not sys.stdout:
                out.close()
        if o["out"] != "-":
            self.stdout.write(
                self.style.SUCCESS(f"Wrote {rows:,} recommendations for {len(names):,} customers to {o['out']}.")
            )
