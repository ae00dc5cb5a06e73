"""Export the top-n recommendations of every customer as CSV, with batched scoring.

    manage.py recommend --all --n 10 --out recs.csv
    manage.py recommend --user 12 --user 40 --strategy ease --out -

Columns: user (external id, or the id when there is none), rank, sku, score.
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
        parser.add_argument("--batch-size", type=int, default=1000)
        parser.add_argument(
            "--include-purchased", action="store_true", help="Do not drop products the customer already bought."
        )

    def handle(self, *args, **o):
        if not 1 <= o["n"] <= 100:
            raise CommandError(f"--n must be from 1 to 100, got {o['n']}")
        if o["batch_size"] < 1:
            raise CommandError("--batch-size must be at least 1")
        try:
            services.strategy_check(o["strategy"])
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        users = User.objects.filter(is_active=True, is_staff=False).order_by("id")
        if o["user"]:
            users = User.objects.filter(pk__in=o["user"]).order_by("id")
            missing = set(o["user"]) - set(users.values_list("id", flat=True))
            if missing:
                raise CommandError(f"unknown user id(s): {sorted(missing)}")
        ids_and_external = list(users.values_list("id", "external_id"))
        out = sys.stdout if o["out"] == "-" else open(o["out"], "w", newline="", encoding="utf-8")  # noqa: SIM115
        rows = 0
        try:
            writer = csv.writer(out)
            writer.writerow(["user", "rank", "sku", "score"])
            with tqdm(
                total=len(ids_and_external),
                unit="customer",
                desc="recommending",
                file=self.stderr,
                disable=o.get("verbosity", 1) == 0,
            ) as bar:
                for start in range(0, len(ids_and_external), o["batch_size"]):
                    chunk = ids_and_external[start : start + o["batch_size"]]
                    picks = services.recommend_for_users_batch(
                        user_ids=[uid for uid, _ in chunk],
                        n=o["n"],
                        strategy=o["strategy"],
                        exclude_purchased=not o["include_purchased"],
                        explain=False,
                    )
                    for uid, external in chunk:
                        for rank, pick in enumerate(picks.get(uid, []), start=1):
                            writer.writerow([external or uid, rank, pick.product.sku, f"{pick.score:.6f}"])
                            rows += 1
                    bar.update(len(chunk))
        finally:
            if out is not sys.stdout:
                out.close()
        if o["out"] != "-":
            self.stdout.write(
                self.style.SUCCESS(f"Wrote {rows} recommendations for {len(ids_and_external)} customers to {o['out']}.")
            )
