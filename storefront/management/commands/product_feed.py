"""Write the product catalogue feed for an ad or shopping platform to a file."""

from __future__ import annotations

import sys
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from storefront import feeds


class Command(BaseCommand):
    help = "Write the catalogue feed (Google Merchant XML/TSV/CSV, Meta catalogue CSV) of active, priced products."

    def add_arguments(self, parser):
        parser.add_argument("--format", dest="fmt", choices=list(feeds.FORMATS), default="google-xml")
        parser.add_argument("--output", "-o", default="-", help="file to write (default: standard output)")

    def handle(self, *args, fmt: str, output: str, **options):
        count = feeds.feed_products().count()
        if output == "-":
            for piece in feeds.feed_stream(fmt):
                sys.stdout.write(piece)
        else:
            path = Path(output)
            if not path.parent.is_dir():
                raise CommandError(f"cannot write {output}: the folder {path.parent} does not exist")
            with path.open("w", encoding="utf-8", newline="") as out:
                for piece in feeds.feed_stream(fmt):
                    out.write(piece)
        self.stderr.write(f"{count} product(s) in the {fmt} feed" + ("" if output == "-" else f", written to {output}"))
