"""Cell-level writers of the data formats: CSV (UTF-8 with BOM, opens in Excel) and JSON
Lines. Which format a request gets, and how each route's answer is framed, is the
registry's (gateway/renderers.py).

CSV is made for spreadsheets, so a text cell that a spreadsheet would run as a formula
(it begins with `=`, `+`, `-`, `@`, a tab or a carriage return) is neutralised as the OWASP
CSV-injection guidance says: a `'` is put in front and the cell is quoted. Numbers are
never touched. `csv_formulas=raw` turns this off for programs that read the CSV
(docs/contract-formats.md).
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from operator import itemgetter
from typing import Any

import orjson
from starlette.requests import Request

from catalog.hosted import HostedDataset
from catalog.models import FieldType
from kernel.problems import invalid_parameter
from policies.compiled import map_columns

BOM = "\ufeff"


# What a spreadsheet takes for the start of a formula (OWASP, "CSV Injection").
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
FORMULA_LINE = re.compile("\n[=+\\-@\t\r]")
# Transforms whose output never starts like a formula: null, `p_…`, a 4-digit year.
FORMULA_SAFE_TRANSFORMS = frozenset({"redact", "pseudonym", "year_only"})


def escapes_formulas(request: Request) -> bool:
    """Whether this request's CSV neutralises formulas (`csv_formulas=escape`, the default)
    or leaves cells as stored (`csv_formulas=raw`, for machine consumers)."""
    mode = request.query_params.get("csv_formulas", "escape")
    if mode not in ("escape", "raw"):
        raise invalid_parameter("csv_formulas", "csv_formulas 只能是 escape | raw")
    return mode == "escape"


def _may_start_formula(ftype: FieldType, transform: str) -> bool:
    if transform == "clear":
        return ftype is FieldType.string  # numbers, dates and booleans are never text
    # Masks keep the first characters; a bucket of a negative number starts with "-".
    return transform not in FORMULA_SAFE_TRANSFORMS


def _starts_formula(value: Any) -> bool:
    return isinstance(value, str) and value.startswith(FORMULA_START)


def _csv_cell(ftype: FieldType) -> Callable[[Any], Any] | None:
    """How a stored value is written to CSV, where `str()` would not do."""
    if ftype is FieldType.boolean:
        return lambda v: "" if v is None else ("true" if v else "false")
    if ftype is FieldType.datetime:  # str() of a datetime has a space where ISO has "T"
        return lambda v: v.isoformat() if isinstance(v, datetime) else v
    return None  # str() of a date is already its ISO form, and csv calls str()


class CsvWriter:
    """Writes rows of the given fields as CSV text, batch by batch."""

    def __init__(
        self,
        hosted: HostedDataset,
        fields: Sequence[str],
        transforms: Sequence[str],
        *,
        escape_formulas: bool = True,
    ):
        self.fields = fields
        types = [hosted.by_name[name].type for name in fields]
        cells = (
            _csv_cell(ftype) if transform == "clear" else None
            for ftype, transform in zip(types, transforms, strict=True)
        )
        self._cells = [(i, cell) for i, cell in enumerate(cells) if cell is not None]
        # The columns whose cells can be text beginning like a formula.
        self._text = (
            [
                i
                for i, (ftype, transform) in enumerate(zip(types, transforms, strict=True))
                if _may_start_formula(ftype, transform)
            ]
            if escape_formulas
            else []
        )

    def header(self) -> str:
        # Field names are identifiers (catalog.package.FIELD_NAME): never a formula.
        buffer = io.StringIO()
        csv.writer(buffer, lineterminator="\r\n").writerow(self.fields)
        return BOM + buffer.getvalue()

    def rows(self, rows: Iterable[Sequence[Any]]) -> str:
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\r\n")
        if self._cells:
            rows = map_columns(rows, self._cells)  # only the columns that need it
        elif self._text and not isinstance(rows, list):
            rows = list(rows)
        flagged = self._formula_columns(rows) if self._text else None  # type: ignore[arg-type]
        if flagged:
            self._write_neutralised(buffer, writer, rows, flagged)  # type: ignore[arg-type]
        else:
            writer.writerows(rows)
        return buffer.getvalue()

    def _formula_columns(self, rows: list[Sequence[Any]]) -> list[int]:
        """The text columns with a cell that may start like a formula. This is the hot
        path and almost always finds none, so it runs in C: a column's cells are joined
        one a line and searched once for a line starting like a formula (a cell holding a
        line break can match falsely; the exact check per row comes after)."""
        flagged = []
        for i in self._text:
            try:  # None and "" never start one
                lines = "\n" + "\n".join(filter(None, map(itemgetter(i), rows)))
            except TypeError:  # a value that is not text: the exact check sorts it out
                flagged.append(i)
                continue
            if FORMULA_LINE.search(lines) is not None:
                flagged.append(i)
        return flagged

    @staticmethod
    def _write_neutralised(
        buffer: io.StringIO, writer: Any, rows: list[Sequence[Any]], flagged: list[int]
    ) -> None:
        # A row with a neutralised cell is written with every text cell quoted (numbers
        # stay bare), so the `'`-prefixed cell is quoted as OWASP asks; other rows as usual.
        quoting = csv.writer(buffer, lineterminator="\r\n", quoting=csv.QUOTE_NONNUMERIC)
        for row in rows:
            hits = [i for i in flagged if _starts_formula(row[i])]
            if not hits:
                writer.writerow(row)
                continue
            cells = list(row)
            for i in hits:
                cells[i] = "'" + cells[i]
            quoting.writerow(cells)


def jsonl_lines(fields: Sequence[str], rows: Iterable[Sequence[Any]]) -> bytes:
    dumps = orjson.dumps
    return b"".join(dumps(dict(zip(fields, row, strict=True))) + b"\n" for row in rows)
