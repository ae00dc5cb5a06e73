"""The data report on the command line (the admin page draws the same report).

manage.py data_quality                    # the whole store
manage.py data_quality --model-version 12      # the window one training run read
manage.py data_quality --since 2026-01-01 --until 2026-03-31
manage.py data_quality --json             # the report as JSON (for scripts)
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, time

from django.core.management.base import BaseCommand, CommandError
from django.utils.dateparse import parse_date, parse_datetime
from tqdm import tqdm

from recommendations.data_quality import report_build
from recommendations.models import ModelVersion

MARKS = {"ok": "ok     ", "info": "info   ", "warning": "WARNING", "problem": "PROBLEM"}


def _moment(text: str, *, end: bool) -> datetime:
    value = parse_datetime(text)
    if value is None:
        day = parse_date(text)
        if day is None:
            raise CommandError(f"{text!r} is not a date (YYYY-MM-DD) or a date and time (ISO 8601)")
        value = datetime.combine(day, time.max if end else time.min)
    return value if value.tzinfo else value.replace(tzinfo=UTC)


class Command(BaseCommand):
    help = "Report on the quality of the data recommendations learn from: what is wrong, its effect, what to do."

    def add_arguments(self, parser):
        parser.add_argument(
            "--model-version", dest="version_id", type=int, help="Only the window of this model version."
        )
        parser.add_argument("--since", help="Only events from this date (YYYY-MM-DD or ISO date-time, UTC).")
        parser.add_argument("--until", help="Only events up to this date (inclusive).")
        parser.add_argument("--json", action="store_true", help="Print the report as JSON.")
        parser.add_argument("--no-progress", action="store_true", help="No progress bar.")

    def handle(self, *args, **options):
        since = _moment(options["since"], end=False) if options["since"] else None
        until = _moment(options["until"], end=True) if options["until"] else None
        if options["version_id"] is not None:
            version = ModelVersion.objects.filter(pk=options["version_id"]).first()
            if version is None:
                raise CommandError(f"no model version {options['version_id']}")
            if version.data_until is None:
                raise CommandError(f"model version {version.pk} has not read its data yet ({version.status})")
            since, until = version.data_since, version.data_until
        if since and until and since > until:
            raise CommandError("--since is after --until")
        bar = None if options["no_progress"] else tqdm(total=100, desc="data report", unit="%", file=self.stderr._out)

        def progress(fraction: float, stage: str) -> None:
            if bar is not None:
                bar.set_postfix_str(stage)
                bar.update(round(100 * fraction) - bar.n)

        try:
            report = report_build(since=since, until=until, progress=progress)
        finally:
            if bar is not None:
                bar.close()
        if options["json"]:
            self.stdout.write(json.dumps(report.as_dict(), indent=2, default=str))
            return
        window = f"{since or 'the first event'} to {until or 'the last event'}"
        self.stdout.write(f"Data report: {report.events:,} events, {window} ({report.seconds:.1f}s)\n")
        for f in report.findings:
            self.stdout.write(f"[{MARKS.get(f.severity, f.severity)}] {f.title}: {f.summary}")
            if f.severity != "ok":
                self.stdout.write(f"          effect: {f.effect}")
                self.stdout.write(f"          to do:  {f.action}")
