"""Reading a catalogue file from any shop: CSV, TSV or JSON lines.

Pure: no database. The format comes from the extension (``.jsonl``/``.ndjson``: one
JSON object per line; ``.tsv``/``.tab``: tabs; ``.csv``: commas) or, for any other
name, from the header line (the most frequent of ``,`` tab ``;`` ``|``). A mapping
renames columns to fields (``sku=ItemCode,name=Title``, the same ``--map`` syntax as
``import_interactions``); fields not mapped are read from a column of their own name
(any case). Every other column is an attribute of the product. Each row is checked by
`shop.services.catalogue.product_row_check`, the validator the API uses too; a bad
row is reported with its line number, e.g. ``line 17: price 'abc' is not a number``.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from shop.services.catalogue import ALIASES, FIELDS, ProductRow, product_row_check

from .interactions_file import FileProblem, RowProblem, delimiter_for, parse_mapping

JSON_LINES = {".jsonl", ".ndjson"}
DELIMITED = {".csv", ".tsv", ".tab"}
SNIFFED = (",", "\t", ";", "|")
ATTRIBUTES = "attributes"  # a JSON line's object of attributes
MAPPABLE = (*FIELDS, ATTRIBUTES)

__all__ = ["FileProblem", "RowProblem", "CatalogueReader", "mapping_parse", "row_check"]


def mapping_parse(text: str | None) -> dict[str, str]:
    """``"sku=ItemCode,name=Title"`` -> ``{"sku": "ItemCode", "name": "Title"}``."""
    return parse_mapping(text, MAPPABLE)


def is_json_lines(path: Path) -> bool:
    return path.suffix.lower() in JSON_LINES


def delimiter_sniff(path: Path, delimiter: str | None, header: str) -> str:
    """The delimiter given, else by extension, else the most frequent candidate in
    the header line (a comma when there is none)."""
    if delimiter or path.suffix.lower() in DELIMITED:
        return delimiter_for(path, delimiter)
    counts = {d: header.count(d) for d in SNIFFED}
    best = max(SNIFFED, key=lambda d: counts[d])
    return best if counts[best] else ","


@dataclass
class CatalogueReader:
    """Iterate a catalogue file as ``(line, values, attributes)``: the raw values of
    the fields (`shop.services.catalogue.FIELDS`) and the other columns by name, or a
    `RowProblem` for a line that cannot be read at all. Raises `FileProblem` when the
    file as a whole cannot be read (encoding, header, mapping)."""

    path: Path
    mapping: dict[str, str] = field(default_factory=dict)
    delimiter: str | None = None

    def __post_init__(self) -> None:
        self.rename = {column: name for name, column in self.mapping.items()}
        self.format = "jsonl" if is_json_lines(self.path) else "csv"

    def field_of(self, column: str) -> str | None:
        """The field a column (or JSON key) holds, or None for an attribute."""
        if column in self.rename:
            return self.rename[column]
        key = column.strip().lower()
        key = ALIASES.get(key, key)
        if key in MAPPABLE and key not in self.mapping:
            return key
        return None

    def rows(self) -> Iterator[tuple[int, dict, dict] | RowProblem]:
        try:
            with open(self.path, encoding="utf-8-sig", newline="") as fh:
                if self.format == "jsonl":
                    yield from self._json_lines(fh)
                else:
                    yield from self._delimited(fh)
        except UnicodeDecodeError as exc:
            raise FileProblem(f"{self.path} is not UTF-8 text ({exc.reason} at byte {exc.start})") from None

    def _json_lines(self, fh) -> Iterator[tuple[int, dict, dict] | RowProblem]:
        for line, text in enumerate(fh, start=1):
            if not text.strip():
                continue
            try:
                obj = json.loads(text)
            except json.JSONDecodeError as exc:
                yield RowProblem(line, f"not valid JSON: {exc.msg} at column {exc.colno}")
                continue
            if not isinstance(obj, dict):
                yield RowProblem(line, "not a JSON object")
                continue
            values: dict = {}
            attributes: dict = {}
            for key, value in obj.items():
                name = self.field_of(key)
                if name is None:
                    attributes[key] = value
                else:
                    values[name] = value
            yield line, values, attributes

    def _delimited(self, fh) -> Iterator[tuple[int, dict, dict] | RowProblem]:
        first = fh.readline()
        if not first.strip():
            raise FileProblem(f"{self.path} is empty: a header row is needed")
        delimiter = delimiter_sniff(self.path, self.delimiter, first)
        fh.seek(0)
        reader = csv.reader(fh, delimiter=delimiter)
        try:
            header = [h.strip() for h in next(reader)]
            fields = [self.field_of(h) for h in header]
            self._check_header(header, fields)
            width = len(header)
            for cells in reader:
                if not cells or (len(cells) == 1 and not cells[0].strip()):
                    continue  # blank line
                if len(cells) != width:
                    yield RowProblem(reader.line_num, f"{len(cells)} fields, the header has {width}")
                    continue
                values: dict = {}
                attributes: dict = {}
                for name, column, cell in zip(fields, header, cells, strict=True):
                    if name == ATTRIBUTES:
                        values[name] = _json_or_text(cell)
                    elif name is not None:
                        values[name] = cell
                    elif cell.strip():
                        attributes[column] = cell.strip()
                yield reader.line_num, values, attributes
        except csv.Error as exc:
            raise FileProblem(f"{self.path}: line {reader.line_num}: {exc}") from None

    def _check_header(self, header: list[str], fields: list[str | None]) -> None:
        shown = ", ".join(repr(h) for h in header) or "(empty)"
        for name, column in self.mapping.items():
            if column not in header:
                raise FileProblem(f"column {column!r} ({name}) is not in the header: {shown}")
        if "sku" not in fields:
            raise FileProblem(f"no column for 'sku' in the header: {shown} (map it: --map sku=<column>)")
        named = [f for f in fields if f is not None]
        twice = sorted({f for f in named if named.count(f) > 1})
        if twice:
            raise FileProblem(f"more than one column holds {', '.join(twice)}: {shown}")
        if len(set(header)) != len(header):
            raise FileProblem(f"the header names a column twice: {shown}")


def _json_or_text(cell: str) -> object:
    """A CSV cell holding a JSON object (the ``attributes`` column), else the text."""
    try:
        return json.loads(cell) if cell.strip() else None
    except json.JSONDecodeError:
        return cell


def row_check(line: int, values: dict, attributes: dict) -> ProductRow | list[RowProblem]:
    """One row -> a checked `ProductRow`, or its problems with the line number."""
    checked = product_row_check(values, index=line, attributes=attributes)
    if isinstance(checked, ProductRow):
        return checked
    return [RowProblem(line, e.message) for e in checked]
