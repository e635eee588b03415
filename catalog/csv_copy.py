"""The fast way into PostgreSQL: a plain CSV goes to `COPY ... (FORMAT csv)` as it is, its
typed columns checked in bulk, a column at a time, instead of cell by cell in Python.

"Plain" means no quote and no carriage return anywhere in the data file (the importer's
digest pass tells): then every line is one row and every comma separates two cells, for
Python's `csv` module and PostgreSQL's CSV parser alike, and an empty cell is NULL in both.

This loader accepts only a subset of what the row-by-row loader in catalog.importer
accepts, with the same stored values, and hands every doubt back by raising RefusedError: a
typed cell that is not in the plain form the checks below vouch for, a line whose cell
count is off, or any error PostgreSQL raises while loading or indexing (an impossible
date, an integer out of range, a repeated or empty primary key, invalid UTF-8). The
importer then rolls back to its savepoint and loads row by row, which names the line,
field and reason exactly as before. Hence the PostgreSQL side only ever has to be stricter
than Python, never more lenient, on what gets past the checks here:

- integer: ASCII digits with an optional leading "-", at most 18 digits (always in
  range; PostgreSQL reads "007" as 7, as the row loader does);
- number: only the characters 0-9 . - + e E (no "nan", "inf", spaces or underscores;
  both parsers read decimal text to the same correctly rounded double);
- boolean: exactly the spellings catalog.values accepts, all of which PostgreSQL reads
  the same way;
- date: exactly YYYY-MM-DD; datetime: exactly YYYY-MM-DDTHH:MM:SS with an hour below 24
  and minutes and seconds below 60 (PostgreSQL refuses impossible days and year 0, as
  Python does, and would read "24:00:00" or second 60, so those never get here).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
from psycopg.copy import QueuedLibpqWriter

from catalog.models import FieldType
from catalog.package import FieldSpec

CHUNK_BYTES = 1 << 22
BOM = b"\xef\xbb\xbf"
BOOLEAN_TEXT = frozenset({b"true", b"True", b"TRUE", b"1", b"false", b"False", b"FALSE", b"0"})
NUMBER_CHARS = b"0123456789.-+eE"


class RefusedError(Exception):
    """The fast loader cannot vouch for this file: load it row by row instead."""


def _integers(values: list[bytes]) -> bool:
    joined = b"".join(values)
    if not joined.isdigit():
        # Negative numbers: one "-" at the start of a value, digits after it.
        if joined and not joined.replace(b"-", b"").isdigit():
            return False
        if joined.count(b"-") != sum(v.startswith(b"-") for v in values):
            return False
        if any(v == b"-" for v in values):
            return False
        return max(map(len, values)) <= 19
    return max(map(len, values), default=0) <= 18


def _fixed(values: list[bytes], template: bytes) -> bytes | None:
    """The values joined if every one has the shape of `template` (d = an ASCII digit,
    any other byte itself), else None."""
    present = [v for v in values if v] if b"" in values else values
    if not present:
        return b""
    width = len(template)
    if set(map(len, present)) != {width}:
        return None
    joined = b"".join(present)
    count = len(present)
    literals = {c for c in template if c != ord("d")}
    for position, c in enumerate(template):
        if c != ord("d") and joined[position::width].count(c) != count:
            return None
    for c in literals:  # each separator only where the template has it
        if joined.count(c) != template.count(c) * count:
            return None
    digits = joined.translate(None, bytes(literals))
    if not digits.isdigit() or len(digits) != template.count(b"d") * count:
        return None
    return joined


def _dates(values: list[bytes]) -> bool:
    return _fixed(values, b"dddd-dd-dd") is not None


def _datetimes(values: list[bytes]) -> bool:
    joined = _fixed(values, b"dddd-dd-ddTdd:dd:dd")
    if joined is None:
        return False
    hours_tens, hours_units = joined[11::19], joined[12::19]
    if hours_tens.translate(None, b"012") or joined[14::19].translate(None, b"012345"):
        return False
    if joined[17::19].translate(None, b"012345"):
        return False
    return b"2" not in hours_tens or all(
        unit <= ord("3") for tens, unit in zip(hours_tens, hours_units, strict=True)
        if tens == ord("2")
    )  # fmt: skip


def _booleans(values: list[bytes]) -> bool:
    return set(values) <= BOOLEAN_TEXT | {b""}


def _numbers(values: list[bytes]) -> bool:
    return not b"".join(values).translate(None, NUMBER_CHARS)


CHECKS: dict[FieldType, Callable[[list[bytes]], bool] | None] = {
    FieldType.string: None,
    FieldType.integer: _integers,
    FieldType.number: _numbers,
    FieldType.boolean: _booleans,
    FieldType.date: _dates,
    FieldType.datetime: _datetimes,
}


def _chunks(path: Path) -> Iterator[tuple[bytes, int]]:
    """The data file after its header line, in pieces that end at a line end, with the
    file position after each."""
    with path.open("rb") as f:
        f.readline()
        rest = b""
        while block := f.read(CHUNK_BYTES):
            block = rest + block
            cut = block.rfind(b"\n") + 1
            if cut == 0:
                rest = block
                continue
            rest = block[cut:]
            yield block[:cut], f.tell() - len(rest)
        if rest:
            yield rest + b"\n", f.tell()


def header(path: Path) -> list[str]:
    """The header's column names (raises RefusedError if the file has no plain header)."""
    with path.open("rb") as f:
        line = f.readline()
    if not line.endswith(b"\n"):
        raise RefusedError
    try:
        return line.removeprefix(BOM)[:-1].decode("utf-8").split(",")
    except UnicodeDecodeError:
        raise RefusedError from None


def copy_plain_csv(
    cursor: psycopg.Cursor,
    statement: str,
    path: Path,
    fields_in_file_order: list[FieldSpec],
    progress: Callable[[int, int], None] | None,
) -> tuple[int, list[bool]]:
    """COPY the rows of a plain CSV through `statement` (the table's columns in the file's
    order, FORMAT csv). Returns the row count and, per column in file order, whether any
    cell was empty. Raises RefusedError on anything it cannot vouch for (see the module)."""
    width = len(fields_in_file_order)
    checks = [(i, CHECKS[f.type]) for i, f in enumerate(fields_in_file_order)]
    typed = [(i, check) for i, check in checks if check is not None]
    has_nulls = [False] * width
    total = path.stat().st_size
    rows = 0
    try:
        with cursor.copy(statement, writer=QueuedLibpqWriter(cursor)) as copy:
            for chunk, position in _chunks(path):
                lines = chunk.count(b"\n")
                cells = chunk[:-1].replace(b"\n", b",").split(b",")
                if len(cells) != lines * width:
                    raise RefusedError
                for i, check in typed:
                    if not check(cells[i::width]):
                        raise RefusedError
                if chunk.startswith(b",") or b",," in chunk or b"\n," in chunk or b",\n" in chunk:
                    for i in range(width):
                        has_nulls[i] = has_nulls[i] or b"" in cells[i::width]
                copy.write(chunk)
                rows += lines
                if progress is not None:
                    progress(position, total)
    except psycopg.Error:
        raise RefusedError from None
    if progress is not None:
        progress(total, total)
    return rows, has_nulls
