"""Output formats of the data endpoints: JSON, CSV (UTF-8 with BOM, opens in Excel) and
JSON Lines, chosen by `format=` or by the Accept header."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import Any

import orjson
from starlette.requests import Request

from catalog.hosted import HostedDataset
from catalog.models import FieldType
from catalog.problems import invalid_parameter
from policies.transforms import map_columns

MEDIA_TYPES = {
    "json": "application/json",
    "csv": "text/csv; charset=utf-8",
    "jsonl": "application/jsonl; charset=utf-8",
}
ACCEPT = (("text/csv", "csv"), ("application/jsonl", "jsonl"), ("application/x-ndjson", "jsonl"))
BOM = "\ufeff"


def negotiate(request: Request, *, allowed: Sequence[str] = ("json", "csv", "jsonl")) -> str:
    fmt = request.query_params.get("format")
    if fmt is None:
        accept = request.headers.get("accept", "")
        fmt = next((name for media, name in ACCEPT if media in accept), allowed[0])
    if fmt not in allowed:
        raise invalid_parameter("format", f"format 只能是 {' | '.join(allowed)}")
    return fmt


def _csv_cell(ftype: FieldType) -> Callable[[Any], Any] | None:
    """How a stored value is written to CSV, where `str()` would not do."""
    if ftype is FieldType.boolean:
        return lambda v: "" if v is None else ("true" if v else "false")
    if ftype is FieldType.datetime:  # str() of a datetime has a space where ISO has "T"
        return lambda v: v.isoformat() if isinstance(v, datetime) else v
    return None  # str() of a date is already its ISO form, and csv calls str()


class CsvWriter:
    """Writes rows of the given fields as CSV text, batch by batch."""

    def __init__(self, hosted: HostedDataset, fields: Sequence[str], transforms: Sequence[str]):
        self.fields = fields
        cells = (
            _csv_cell(hosted.by_name[name].type) if transform == "clear" else None
            for name, transform in zip(fields, transforms, strict=True)
        )
        self._cells = [(i, cell) for i, cell in enumerate(cells) if cell is not None]

    def header(self) -> str:
        return BOM + self.rows([self.fields], raw=True)

    def rows(self, rows: Iterable[Sequence[Any]], *, raw: bool = False) -> str:
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\r\n")
        if self._cells and not raw:
            rows = map_columns(rows, self._cells)  # only the columns that need it
        writer.writerows(rows)
        return buffer.getvalue()


def jsonl_lines(fields: Sequence[str], rows: Iterable[Sequence[Any]]) -> bytes:
    dumps = orjson.dumps
    return b"".join(dumps(dict(zip(fields, row, strict=True))) + b"\n" for row in rows)
