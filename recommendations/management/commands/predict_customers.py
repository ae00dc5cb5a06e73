"""Compute every customer's predictions (probability active, expected purchases in
the next 90 days, predicted lifetime value) from the order history.

manage.py predict_customers                 # in this process, with its progress
manage.py predict_customers --queue         # enqueue to the Celery worker and return
manage.py predict_customers --if-none --queue   # only if no run ever finished (bootstrap)
"""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from recommendations import services
from recommendations.models import PredictionRun
from recommendations.predictions import PredictionError, predictions_compute


class Command(BaseCommand):
    help = "Compute customer predictions (BG/NBD-family purchases, Gamma-Gamma value) from the order history."

    def add_arguments(self, parser):
        parser.add_argument("--model", default=None, help="Transactions model (default: PREDICTION_MODEL).")
        parser.add_argument("--queue", action="store_true", help="Enqueue to the worker instead of computing here.")
        parser.add_argument("--if-none", action="store_true", help="Do nothing if a run already finished.")

    def handle(self, *args, model: str | None, queue: bool, if_none: bool, **options):
        if if_none and PredictionRun.objects.filter(status=PredictionRun.Status.DONE).exists():
            self.stdout.write("Customer predictions exist: not computing them again.")
            return
        try:
            with transaction.atomic():
                run = services.prediction_run_create(model=model)
                if queue:
                    services.predictions_compute_enqueue(run=run)
        except PredictionError as exc:
            raise CommandError(str(exc)) from exc
        if queue:
            self.stdout.write(f"Customer predictions #{run.pk} queued.")
            return
        done = predictions_compute(run_id=run.pk)
        if done is None or done.status != PredictionRun.Status.DONE:
            reason = getattr(done, "error", "") or "see the run in admin"
            raise CommandError(f"Customer predictions #{run.pk} failed: {reason}")
        self.stdout.write(self.style.SUCCESS(f"Customer predictions #{run.pk}: done."))
