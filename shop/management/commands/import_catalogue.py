"""``manage.py import_catalogue FILE [--map sku=ItemCode,...] [--dry-run]``: any shop's
product catalogue from CSV, TSV or JSON lines, upserted by SKU, all or nothing. Thin:
the work is `shop.importers.catalogue_load`."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from shop.importers.catalogue_file import MAPPABLE, FileProblem
from shop.importers.catalogue_load import CatalogueFileRejected, catalogue_file_import
from shop.importers.common import no_progress, tqdm_progress


class Command(BaseCommand):
    help = (
        "Import products from a CSV, TSV or JSON lines file (.jsonl/.ndjson), created or updated by "
        "SKU. Columns: sku (required), name (required for a new product), description, category "
        "('Kitchen > Storage', created as needed), price, currency, stock (empty: not tracked), "
        "active, image_url; every other column is kept in the product's attributes. All or nothing: "
        "any bad row is reported with its line number and nothing is written. Importing the same "
        "file again changes nothing."
    )

    def add_arguments(self, parser):
        parser.add_argument("file", help="CSV/TSV file with a header row, or JSON lines (.jsonl, .ndjson)")
        parser.add_argument(
            "--delimiter",
            default=None,
            help=r"field separator: ',' ';' '|' or '\t' (default: by extension, else guessed from the header)",
        )
        parser.add_argument(
            "--map",
            dest="mapping",
            default="",
            help=f"field=column pairs for the fields {', '.join(MAPPABLE)}, e.g. sku=ItemCode,name=Title "
            "(unmapped fields use a column of their own name if present)",
        )
        parser.add_argument("--dry-run", action="store_true", help="report what would change, write nothing")
        parser.add_argument("--show-errors", type=int, default=20, help="how many bad rows to list (default 20)")
        parser.add_argument("--no-progress", action="store_true", help="no progress bar")

    def handle(self, *args, **options):
        progress = no_progress if options["no_progress"] else tqdm_progress(self.stderr._out)
        shown = max(options["show_errors"], 0)
        try:
            report = catalogue_file_import(
                path=options["file"],
                delimiter=options["delimiter"],
                mapping=options["mapping"],
                dry_run=options["dry_run"],
                keep_problems=shown,
                progress=progress,
            )
        except FileProblem as exc:
            raise CommandError(f"{exc}. Nothing was imported.") from exc
        except CatalogueFileRejected as exc:
            listed = "\n".join(str(p) for p in exc.problems[:shown])
            more = exc.total - len({p.line for p in exc.problems[:shown]})
            tail = f"\n... and {more:,} more bad rows" if more > 0 else ""
            raise CommandError(
                f"{exc.total:,} of {exc.rows:,} rows are invalid. Nothing was imported.\n{listed}{tail}"
            ) from exc
        for line in report.lines():
            self.stdout.write(line)
        verb = "Would import" if report.dry_run else "Imported"
        self.stdout.write(self.style.SUCCESS(f"{verb}: {report.created:,} created, {report.updated:,} updated."))
