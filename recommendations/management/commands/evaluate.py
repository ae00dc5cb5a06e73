"""Offline evaluation: every algorithm on one holdout, with the code model selection uses.

manage.py evaluate                                   # the database's customers' events
manage.py evaluate --file events.csv --map user=customer,item=sku
manage.py evaluate --protocol leave-last-out --algorithms ease,als,hybrid --out results.md

Prints NDCG@10, precision, recall, MAP, coverage, novelty, long-tail share and popularity
lift (how much more popular the picks are than what customers chose) per algorithm setting with its fit
time; ``--out`` writes the table as CSV (``.csv``) or markdown (anything else).

manage.py evaluate --rules [--placement email] [--holdout-days 14]

Each live merchandising rule's effect on NDCG@10 instead: the served lists (active
model, the placement's rules) from customers' events before a cut, with no rules,
every rule, and every rule but one, against what they bought after the cut
(``recommendations.rule_effects`` explains the protocol).
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from recommendations.engine.evaluation import PROTOCOLS
from recommendations.noise import events_exclude, noise_find
from recommendations.rule_effects import rule_effects_ndcg
from recommendations.training import SELECTION_KEYS, evaluation_run, settings_text
from recommendations.training_data import events_from_file, interaction_matrix_build
from recommendations.versions import TrainingError
from shop.importers.interactions_file import FileProblem

# the stored selection row's keys, with params and reason read as one "settings" column
COLUMNS = (*(key for key in SELECTION_KEYS if key not in ("params", "reason")), "settings")


class Command(BaseCommand):
    help = "Evaluate recommendation algorithms offline on a holdout of the database's or a file's events."

    def add_arguments(self, parser):
        parser.add_argument("--file", default=None, help="An interactions file (import_interactions format).")
        parser.add_argument("--map", dest="mapping", default="", help="field=column pairs, as import_interactions.")
        parser.add_argument("--delimiter", default=None, help="Field separator (default: from the file name).")
        parser.add_argument("--default-kind", default="purchase", help="Kind when the file has no kind column.")
        parser.add_argument("--timestamp-unit", choices=["s", "ms"], default="s")
        parser.add_argument(
            "--protocol", choices=PROTOCOLS, default="", help="Holdout protocol (default: from the data's shape)."
        )
        parser.add_argument(
            "--algorithms",
            default="",
            help="Comma-separated algorithms, e.g. ease,als,hybrid (default: the selection's candidates).",
        )
        parser.add_argument("--seed", type=int, default=0, help="Seed of the random splits.")
        parser.add_argument("--out", default=None, help="Write the table to FILE.csv or FILE.md.")
        parser.add_argument(
            "--rules", action="store_true", help="Each live merchandising rule's effect on NDCG@10 (see above)."
        )
        parser.add_argument("--placement", default="email", help="--rules: whose rules (a placement key).")
        parser.add_argument("--holdout-days", type=float, default=14, help="--rules: days after the cut.")
        parser.add_argument("--max-users", type=int, default=1000, help="--rules: customers evaluated at most.")

    def handle(self, *args, **o):
        if o["rules"]:
            self._rules(o)
            return
        try:
            if o["file"]:
                events, problems = events_from_file(
                    path=o["file"],
                    delimiter=o["delimiter"],
                    mapping=o["mapping"],
                    default_kind=o["default_kind"],
                    timestamp_unit=o["timestamp_unit"],
                )
                if problems:
                    self.stderr.write(f"{len(problems)} rows left out, e.g. {problems[0]}")
            else:  # what training learns from: suspected bots and noise left out
                events, dropped = events_exclude(interaction_matrix_build(), noise_find())
                if dropped:
                    self.stderr.write(f"{dropped} events of suspected bots and noise left out (see the data report)")
        except FileProblem as exc:
            raise CommandError(str(exc)) from None
        algorithms = [a.strip() for a in o["algorithms"].split(",") if a.strip()] or None
        with tqdm(total=100, unit="%", desc="evaluating", file=self.stderr, disable=o["verbosity"] == 0) as bar:

            def progress(fraction: float) -> None:
                bar.update(round(100 * fraction) - bar.n)

            try:
                holdout, result = evaluation_run(
                    events=events,
                    catalogue=not o["file"],
                    protocol=o["protocol"],
                    algorithms=algorithms,
                    seed=o["seed"],
                    progress=progress,
                )
            except TrainingError as exc:
                raise CommandError(str(exc)) from None
        rows = [{**row, "settings": settings_text(row)} for row in result.rows]
        self.stdout.write(
            f"{len(events):,} interactions; holdout {holdout.protocol.name} ({holdout.protocol.reason}); "
            f"{holdout.users:,} customers evaluated"
        )
        self.stdout.write(self._markdown(rows))
        self.stdout.write(f"best: {result.best_name} (NDCG@10 {result.best_metrics.get('ndcg', 0):.4f})")
        if o["out"]:
            self._write(Path(o["out"]), rows)
            self.stdout.write(f"wrote {o['out']}")

    def _rules(self, o) -> None:
        try:
            rows = rule_effects_ndcg(
                placement=o["placement"], holdout_days=o["holdout_days"], max_users=o["max_users"], seed=o["seed"]
            )
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        lines = [
            f"placement {o['placement']}; {rows[0].users:,} customers; NDCG@10 of the served lists",
            "| rule | action | NDCG@10 | effect of the rule |",
            "|---|---|---|---|",
        ]
        for r in rows:
            label = f"#{r.rule_id} {r.name}" if r.rule_id is not None else r.name
            ndcg_text = f"{r.ndcg:.4f}" + (" (without it)" if r.rule_id is not None else "")
            effect = f"{r.delta:+.4f}" if r.rule_id is not None or r.name != "no rules" else ""
            lines.append(f"| {label} | {r.action} | {ndcg_text} | {effect} |")
        text = "\n".join(lines)
        self.stdout.write(text)
        if o["out"]:
            Path(o["out"]).write_text(text + "\n")
            self.stdout.write(f"wrote {o['out']}")

    @staticmethod
    def _cell(value: Any) -> str:
        if isinstance(value, float):
            return f"{value:.4f}"
        return "" if value is None else str(value)

    def _markdown(self, rows: list[dict[str, Any]]) -> str:
        head = (
            "| algorithm | status | NDCG@10 | P@10 | R@10 | MAP@10 | coverage | novelty | long-tail share "
            "| popularity lift | fit s | settings |"
        )
        lines = [head, "|" + "---|" * len(COLUMNS)]
        for row in rows:
            lines.append("| " + " | ".join(self._cell(row.get(c)) for c in COLUMNS) + " |")
        return "\n".join(lines)

    def _write(self, path: Path, rows: list[dict[str, Any]]) -> None:
        if path.suffix.lower() == ".csv":
            with open(path, "w", newline="") as handle:
                out = csv.writer(handle)
                out.writerow(COLUMNS)
                for row in rows:
                    out.writerow([row.get(c, "") for c in COLUMNS])
        else:
            path.write_text(self._markdown(rows) + "\n")
