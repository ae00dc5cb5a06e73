"""Export a segment as a custom-audience file (hashed emails of consenting customers)
for Meta Custom Audiences or Google Ads Customer Match."""

from __future__ import annotations

import sys
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from campaigns import audiences
from campaigns.models import Segment


class Command(BaseCommand):
    help = "Write a segment's consenting customers as a custom-audience CSV (normalised, SHA-256-hashed emails)."

    def add_arguments(self, parser):
        parser.add_argument("segment", help="the segment's id or exact name")
        parser.add_argument("--platform", choices=sorted(audiences.PLATFORMS), default="meta")
        parser.add_argument("--output", "-o", default="-", help="file to write (default: standard output)")

    def handle(self, *args, segment: str, platform: str, output: str, **options):
        found = Segment.objects.filter(pk=int(segment)).first() if segment.isdigit() else None
        found = found or Segment.objects.filter(name=segment).first()
        if found is None:
            raise CommandError(f"no segment with id or name {segment!r}")
        if output == "-":
            n = audiences.audience_write(segment=found, platform=platform, out=sys.stdout)
        else:
            path = Path(output)
            if not path.parent.is_dir():
                raise CommandError(f"cannot write {output}: the folder {path.parent} does not exist")
            with path.open("w", encoding="utf-8", newline="") as out:
                n = audiences.audience_write(segment=found, platform=platform, out=out)
        self.stderr.write(
            f"{n} hashed email(s) of consenting customers in segment {found.name!r} "
            f"for {audiences.platform_get(platform).label}" + ("" if output == "-" else f" written to {output}")
        )
