"""Load a catalogue file from any shop (the ``import_catalogue`` work).

All or nothing: a first pass reads and checks every row (`catalogue_file`); if any
row is bad, `CatalogueFileRejected` lists them (line and reason) and nothing is
written. Otherwise `shop.services.catalogue.products_upsert` stores them in one
transaction, by SKU: new products are created, changed ones updated, the same ones
left alone (so importing a file twice changes nothing the second time), placeholder
products that events created are filled in. ``dry_run`` reports what would change.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from shop.services.catalogue import ProductRow, products_upsert
from shop.services.errors import ValidationFailed

from . import catalogue_file as cfile
from .common import PhaseTimer, ProgressFactory, no_progress


class CatalogueFileRejected(ValueError):
    """The file has bad rows; nothing was written. ``problems`` holds the first ones
    (line and reason, in file order), ``total`` how many there are in all."""

    def __init__(self, problems: list[cfile.RowProblem], total: int, rows: int):
        self.problems, self.total, self.rows = problems, total, rows
        super().__init__(f"{total:,} of {rows:,} rows are invalid; first: {problems[0]}")


@dataclass
class CatalogueImportReport:
    rows: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    placeholders_filled: int = 0
    categories_created: int = 0
    dry_run: bool = False
    timings: dict = field(default_factory=dict)

    def lines(self) -> list[str]:
        would = "Would create" if self.dry_run else "Created"
        lines = [
            f"Rows: {self.rows:,}",
            f"{would}: products {self.created:,}, categories {self.categories_created:,}",
            f"{'Would update' if self.dry_run else 'Updated'}: products {self.updated:,} "
            f"(placeholders from events filled in: {self.placeholders_filled:,}); unchanged {self.unchanged:,}",
        ]
        if not self.dry_run:
            lines.append("Time: " + ", ".join(f"{k} {v:.1f}s" for k, v in self.timings.items()))
        return lines


def catalogue_file_import(
    *,
    path: Path | str,
    delimiter: str | None = None,
    mapping: str | dict | None = None,
    keep_problems: int = 1000,
    dry_run: bool = False,
    progress: ProgressFactory = no_progress,
) -> CatalogueImportReport:
    """Check the whole file, then upsert all of it in one transaction, or nothing.

    Raises `cfile.FileProblem` when the file cannot be read as mapped and
    `CatalogueFileRejected` when any row is invalid (also with ``dry_run``)."""
    path = Path(path)
    if not path.is_file():
        raise cfile.FileProblem(f"{path} does not exist or is not a file")
    fields = mapping if isinstance(mapping, dict) else cfile.mapping_parse(mapping)
    reader = cfile.CatalogueReader(path, fields, delimiter)
    report = CatalogueImportReport(dry_run=dry_run)
    lap = PhaseTimer(report.timings)

    rows: list[ProductRow] = []
    problems: list[cfile.RowProblem] = []
    bad = 0
    bar = progress(desc="check", unit="rows")
    try:
        for item in reader.rows():
            report.rows += 1
            bar.update(1)
            checked = cfile.row_check(*item) if not isinstance(item, cfile.RowProblem) else [item]
            if isinstance(checked, ProductRow):
                rows.append(checked)
                continue
            bad += 1
            room = keep_problems - len(problems)
            problems += checked[: max(room, 0)]
    finally:
        bar.close()
    if bad:
        # What needs the database (a new product's name, a SKU twice) too: one run shows all.
        more = products_upsert(rows=rows, dry_run=True, partial=True, index_label="line").errors
        bad += len({e.index for e in more})
        problems += [cfile.RowProblem(e.index, e.message) for e in more]
        problems.sort(key=lambda p: p.line)
        raise CatalogueFileRejected(problems[:keep_problems], bad, report.rows)
    lap("check")

    bar = progress(total=len(rows), desc="store" if not dry_run else "compare", unit="rows")
    try:
        result = products_upsert(rows=rows, dry_run=dry_run, progress=bar, index_label="line")
    except ValidationFailed as exc:
        lines = {e.index for e in exc.errors}
        found = [cfile.RowProblem(e.index, e.message) for e in exc.errors[:keep_problems]]
        raise CatalogueFileRejected(found, len(lines), report.rows) from None
    finally:
        bar.close()
    lap("store")
    report.created, report.updated, report.unchanged = result.created, result.updated, result.unchanged
    report.placeholders_filled, report.categories_created = result.placeholders_filled, result.categories_created
    return report
