"""Train a recommendation model: inline with a progress bar, or queued to a worker.

manage.py train                          # automatic model selection, in this process
manage.py train --algorithm ease --params '{"lam": 400}'
manage.py train --protocol random-per-user   # force the holdout protocol (default: from the data)
manage.py train --queue                  # enqueue to the Celery worker and return
manage.py train --if-none --queue        # only if no model was ever trained (bootstrap)
"""

from __future__ import annotations

import json

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from recommendations import services
from recommendations.engine.evaluation import PROTOCOLS
from recommendations.models import DEFAULT_SLOT, ModelVersion
from recommendations.training import settings_text


class Command(BaseCommand):
    help = "Train a recommendation model (champion/challenger activation on NDCG@10)."

    def add_arguments(self, parser):
        parser.add_argument("--algorithm", default=None, help='"auto" (default: model selection) or an algorithm name.')
        parser.add_argument("--params", default="{}", help="Algorithm parameters as a JSON object.")
        parser.add_argument("--slot", default=DEFAULT_SLOT, help="Serving slot (default: %(default)s).")
        parser.add_argument(
            "--protocol",
            choices=PROTOCOLS,
            default="",
            help="Holdout protocol (default: random-per-user for explicit ratings, temporal for other events "
            "unless their timestamps cannot separate train from test).",
        )
        parser.add_argument("--queue", action="store_true", help="Enqueue to the worker instead of training here.")
        parser.add_argument(
            "--if-none",
            action="store_true",
            help="Do nothing if a succeeded version (or a queued/running one) already exists.",
        )

    def handle(self, *args, algorithm, params, slot, protocol, queue, if_none, **options):
        try:
            parsed = json.loads(params)
        except json.JSONDecodeError as exc:
            raise CommandError(f"--params is not valid JSON: {exc}") from None
        if not isinstance(parsed, dict):
            raise CommandError("--params must be a JSON object, e.g. '{\"lam\": 400}'")
        if if_none:
            existing = ModelVersion.objects.filter(
                slot=slot,
                status__in=[ModelVersion.Status.SUCCEEDED, ModelVersion.Status.QUEUED, ModelVersion.Status.RUNNING],
            ).first()
            if existing is not None:
                self.stdout.write(f"A model version exists already ({existing}); not training (--if-none).")
                return
        try:
            version = services.model_version_create(
                algorithm=algorithm, params=parsed, slot=slot, trigger=ModelVersion.Trigger.COMMAND, protocol=protocol
            )
        except services.TrainingError as exc:
            raise CommandError(str(exc)) from None
        if queue:
            services.model_train_enqueue(version=version)
            self.stdout.write(
                self.style.SUCCESS(
                    f"Queued training of {version.algorithm} as model version {version.pk}; follow it in admin."
                )
            )
            return
        with tqdm(
            total=100,
            unit="%",
            desc=f"training {version.algorithm}#{version.pk}",
            file=self.stderr,
            disable=options.get("verbosity", 1) == 0,
        ) as bar:

            def progress(percent: int, stage: str) -> None:
                bar.set_postfix_str(stage[:50])
                bar.update(percent - bar.n)

            version = services.model_train(version_id=version.pk, progress=progress)
        if version.status != ModelVersion.Status.SUCCEEDED:
            raise CommandError(f"training failed: {version.error.splitlines()[0] if version.error else version.status}")
        if options.get("verbosity", 1) > 0:
            self._selection_table(version)
        metrics = ", ".join(
            f"{k} {v:.4f}"
            for k, v in version.metrics.items()
            if k in ("ndcg@10", "precision@10", "recall@10", "map@10")
        )
        self.stdout.write(
            self.style.SUCCESS(
                f"{version.label}: {metrics or 'no holdout metrics'}; {version.n_interactions} interactions, "
                f"{version.training_seconds:.1f}s. {version.activation_note}"
            )
        )

    def _selection_table(self, version: ModelVersion) -> None:
        metrics = version.metrics or {}
        if metrics.get("protocol"):
            self.stdout.write(f"holdout: {metrics['protocol']} ({metrics.get('protocol_reason', '')})")
        rows = metrics.get("selection") or []
        if not rows:
            return
        self.stdout.write(f"{'algorithm':<15} {'status':<8} {'ndcg@10':>8} {'fit s':>7}  params / reason")
        for row in rows:
            ndcg = f"{row['ndcg']:.4f}" if isinstance(row.get("ndcg"), float) else "-"
            fit = f"{row['train_seconds']:.1f}" if isinstance(row.get("train_seconds"), float) else "-"
            detail = settings_text(row) if row.get("status") == "ok" else row.get("reason") or ""
            self.stdout.write(f"{row['algorithm']:<15} {row.get('status', ''):<8} {ndcg:>8} {fit:>7}  {detail}")
