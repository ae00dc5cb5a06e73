"""``manage.py seed_synthetic --users N --products N --interactions N [--seed S]
[--categories N] [--days D]``: a synthetic store at scale (power-law popularity,
category tastes, view -> cart -> purchase funnels, months of timestamps, orders).
Thin: the work is `shop.importers.synthetic` and `shop.importers.synthetic_load`."""

from __future__ import annotations

from datetime import UTC, datetime

from django.core.management.base import BaseCommand, CommandError

from shop.importers.common import no_progress, tqdm_progress
from shop.importers.synthetic_load import SyntheticExists, synthetic_seed


def _positive(text: str) -> int:
    value = int(text.replace("_", "").replace(",", ""))
    if value < 1:
        raise ValueError
    return value


_positive.__name__ = "positive integer"


class Command(BaseCommand):
    help = (
        "Generate a synthetic store: customers, products, categories, orders and interactions "
        "with realistic structure. Deterministic for a --seed and --end-date."
    )

    def add_arguments(self, parser):
        parser.add_argument("--users", type=_positive, required=True)
        parser.add_argument("--products", type=_positive, required=True)
        parser.add_argument("--interactions", type=_positive, required=True)
        parser.add_argument("--seed", type=int, default=0, help="random seed (also part of every key)")
        parser.add_argument("--categories", type=_positive, default=20, help="leaf categories (default 20)")
        parser.add_argument("--days", type=_positive, default=180, help="days of history (default 180)")
        parser.add_argument(
            "--end-date", default=None, help="last day of the history, YYYY-MM-DD (default: today, UTC)"
        )
        parser.add_argument("--no-progress", action="store_true", help="no progress bar")

    def handle(self, *args, **options):
        end = None
        if options["end_date"]:
            try:
                end = datetime.strptime(options["end_date"], "%Y-%m-%d").replace(tzinfo=UTC)
            except ValueError:
                raise CommandError(f"--end-date {options['end_date']!r} is not YYYY-MM-DD") from None
        progress = no_progress if options["no_progress"] else tqdm_progress(self.stderr._out)
        try:
            report = synthetic_seed(
                users=options["users"],
                products=options["products"],
                interactions=options["interactions"],
                seed=options["seed"],
                categories=options["categories"],
                days=options["days"],
                end=end,
                progress=progress,
            )
        except (SyntheticExists, ValueError) as exc:
            raise CommandError(str(exc)) from exc
        for line in report.lines():
            self.stdout.write(line)
        self.stdout.write(self.style.SUCCESS(f"Synthetic store (seed {options['seed']}) created."))
