"""``manage.py import_online_retail [--file PATH] [--limit N]``: the demo store from
the UCI Online Retail file. Thin: the work is `shop.importers.online_retail_load`."""

from __future__ import annotations

import time

from django.core.management.base import BaseCommand, CommandError

from shop.importers.common import no_progress, tqdm_progress
from shop.importers.online_retail import MalformedRow
from shop.importers.online_retail_load import DEFAULT_FILE, online_retail_import


class Command(BaseCommand):
    help = (
        "Import the UCI Online Retail data set (products, categories, customers, orders and "
        "interactions). Idempotent: re-running it creates nothing new."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--file",
            default=str(DEFAULT_FILE),
            help="CSV file, plain or .xz (default: the bundled data/online_retail.csv.xz)",
        )
        parser.add_argument(
            "--limit", type=int, default=None, help="read about the first N rows (the last invoice is read to its end)"
        )
        parser.add_argument("--no-progress", action="store_true", help="no progress bar")

    def handle(self, *args, **options):
        if options["limit"] is not None and options["limit"] < 1:
            raise CommandError("--limit must be at least 1")
        started = time.monotonic()
        progress = no_progress if options["no_progress"] else tqdm_progress(self.stderr._out)
        try:
            report = online_retail_import(path=options["file"], limit=options["limit"], progress=progress)
        except (FileNotFoundError, MalformedRow, UnicodeDecodeError) as exc:
            raise CommandError(str(exc)) from exc
        for line in report.lines():
            self.stdout.write(line)
        self.stdout.write(
            self.style.SUCCESS(
                f"Online Retail import finished in {time.monotonic() - started:.1f}s: "
                f"{report.total_created:,} rows created."
            )
        )
