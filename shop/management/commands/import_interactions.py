"""``manage.py import_interactions FILE [--delimiter ,] [--map user=...,item=...] [--dry-run]``:
any shop's event history from CSV/TSV, all or nothing, nothing stored twice. Thin: the
work is `shop.importers.interactions_load`."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from shop.importers.common import no_progress, tqdm_progress
from shop.importers.interactions_file import FIELDS, FileProblem
from shop.importers.interactions_load import InteractionsFileRejected, interactions_file_import


class Command(BaseCommand):
    help = (
        "Import interactions (user, item, timestamp, kind, value) from a CSV or TSV file. All or "
        "nothing: any bad row is reported with its line number and nothing is written. Unknown "
        "customers (external id) and products (SKU, placeholder 'Product <sku>') are created. "
        "Nothing is stored twice, so a file can be imported again: each event's key is the "
        "file's event_id column when it has one (the same idempotency key as the API's), "
        "else 'imp:' + a hash of customer, product, kind and time (not the value); an event "
        "whose key is stored already, or repeats an earlier row, is skipped and counted as "
        "a duplicate."
    )

    def add_arguments(self, parser):
        parser.add_argument("file", help="CSV or TSV file with a header row")
        parser.add_argument(
            "--delimiter",
            default=None,
            help=r"field separator: ',' ';' '|' or '\t' (default: tab for .tsv, else comma)",
        )
        parser.add_argument(
            "--map",
            dest="mapping",
            default="",
            help=f"field=column pairs for the fields {', '.join(FIELDS)}, e.g. "
            "user=customer_id,item=sku,value=qty,timestamp=ts,kind=event "
            "(unmapped fields use a column of their own name if present)",
        )
        parser.add_argument("--default-kind", default="purchase", help="kind when there is no kind column")
        parser.add_argument(
            "--timestamp-unit",
            choices=["s", "ms"],
            default="s",
            help="unit of numeric timestamps: unix seconds (default) or milliseconds",
        )
        parser.add_argument("--show-errors", type=int, default=50, help="how many bad rows to list (default 50)")
        parser.add_argument(
            "--keep-indexes",
            action="store_true",
            help="never drop and rebuild the interactions indexes (slower for a big file into "
            "a small table, but the table stays usable by the running store meanwhile)",
        )
        parser.add_argument(
            "--dry-run",
            action="store_true",
            help="write nothing: report what would be stored (new events, duplicates, customers "
            "and products to create) and every bad row",
        )
        parser.add_argument("--no-progress", action="store_true", help="no progress bar")

    def handle(self, *args, **options):
        progress = no_progress if options["no_progress"] else tqdm_progress(self.stderr._out)
        try:
            report = interactions_file_import(
                path=options["file"],
                delimiter=options["delimiter"],
                mapping=options["mapping"],
                default_kind=options["default_kind"],
                timestamp_unit=options["timestamp_unit"],
                keep_problems=max(options["show_errors"], 0),
                defer_indexes=not options["keep_indexes"],
                dry_run=options["dry_run"],
                progress=progress,
            )
        except FileProblem as exc:
            raise CommandError(f"{exc}. Nothing was imported.") from exc
        except InteractionsFileRejected as exc:
            self._problems(exc.problems, exc.total, options["show_errors"])
            raise CommandError(
                f"{exc.total:,} of {exc.rows:,} rows are invalid (listed above). Nothing was imported."
            ) from exc
        if report.dry_run:
            self._problems(report.problems, report.bad, options["show_errors"])
        for line in report.lines():
            self.stdout.write(line)
        if report.dry_run and report.bad:
            raise CommandError(
                f"Dry run: {report.bad:,} of {report.rows:,} rows are invalid (listed above); "
                "the import would store nothing. Nothing was written."
            )
        if report.dry_run:
            self.stdout.write(
                self.style.SUCCESS(
                    f"Dry run: would import {report.created['interactions']:,} interactions. Nothing was written."
                )
            )
            return
        self.stdout.write(self.style.SUCCESS(f"Imported {report.created['interactions']:,} interactions."))

    def _problems(self, problems, total: int, show: int) -> None:
        for problem in problems[:show]:
            self.stderr.write(str(problem))
        more = total - min(len(problems), show)
        if more > 0:
            self.stderr.write(f"... and {more:,} more bad rows")
