"""Typed values: parsing text (CSV cells, query strings, cursors) into a field's type, and
the storage form each database keeps.

SQLite has no date types, so dates and datetimes are stored there as ISO-8601 text, which
sorts in time order. PostgreSQL gets native `date` and `timestamp` columns.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import Any

from catalog.models import FieldType

TRUE_VALUES = frozenset({"true", "True", "TRUE", "1"})
FALSE_VALUES = frozenset({"false", "False", "FALSE", "0"})

INT64 = 1 << 63

TYPE_NAMES = {
    FieldType.string: "字符串（string）",
    FieldType.integer: "整数（integer）",
    FieldType.number: "数字（number）",
    FieldType.boolean: "布尔值（boolean，可写 true/false 或 1/0）",
    FieldType.date: "日期（date，YYYY-MM-DD）",
    FieldType.datetime: "日期时间（datetime，YYYY-MM-DDTHH:MM:SS）",
}


def parse_integer(text: str) -> int:
    # int() also reads "1_000" and the digits of every script ("１０", "٤٢"): a data file or a
    # query parameter holds ASCII digits only.
    if "_" in text or not text.isascii():
        raise ValueError(text)
    value = int(text)
    if not -INT64 <= value < INT64:  # both databases store 64-bit integers
        raise ValueError(text)
    return value


def parse_number(text: str) -> float:
    if "_" in text or not text.isascii():  # as parse_integer: float() reads "１.５" too
        raise ValueError(text)
    value = float(text)
    if value - value != 0:  # nan and ±inf are not data
        raise ValueError(text)
    return value


def parse_boolean(text: str) -> bool:
    if text in TRUE_VALUES:
        return True
    if text in FALSE_VALUES:
        return False
    raise ValueError(text)


def parse_date(text: str) -> date:
    if len(text) != 10:  # only the extended form YYYY-MM-DD
        raise ValueError(text)
    return date.fromisoformat(text)


def parse_datetime(text: str) -> datetime:
    value = datetime.fromisoformat(text)
    if value.tzinfo is not None:
        # One clock in storage: instants with an offset are kept as naive UTC.
        value = value.astimezone(UTC).replace(tzinfo=None)
    return value


PARSERS: dict[FieldType, Callable[[str], Any]] = {
    FieldType.string: str,
    FieldType.integer: parse_integer,
    FieldType.number: parse_number,
    FieldType.boolean: parse_boolean,
    FieldType.date: parse_date,
    FieldType.datetime: parse_datetime,
}


def parse_value(ftype: FieldType | str, text: str) -> Any:
    """Parse `text` as a value of `ftype`; raise ValueError naming the expected type."""
    try:
        return PARSERS[FieldType(ftype)](text)
    except (ValueError, OverflowError):
        raise ValueError(f"不是{TYPE_NAMES[FieldType(ftype)]}") from None


def to_storage(ftype: FieldType | str, value: Any, dialect: str) -> Any:
    """The form a parsed value is bound as in SQL on `dialect`."""
    if value is None or dialect != "sqlite":
        return value
    if ftype in (FieldType.date, FieldType.datetime):
        return value.isoformat()
    return value


# --- import: text → storage form, per type and database --------------------------------
# Strings need no conversion (None below): the importer passes them through untouched.


def _sqlite_date(text: str) -> str:
    return parse_date(text).isoformat()


def _sqlite_datetime(text: str) -> str:
    return parse_datetime(text).isoformat()


def _sqlite_boolean(text: str) -> int:
    return 1 if parse_boolean(text) else 0


SQLITE_CONVERTERS: dict[FieldType, Callable[[str], Any] | None] = {
    FieldType.string: None,
    FieldType.integer: parse_integer,
    FieldType.number: parse_number,
    FieldType.boolean: _sqlite_boolean,
    FieldType.date: _sqlite_date,
    FieldType.datetime: _sqlite_datetime,
}


def _copy_integer(text: str) -> str:
    # Fast path: plain digits without a leading zero are already the canonical text
    # (which matters for primary keys: "7" and "007" must not both pass as distinct).
    if len(text) < 19 and text.isdigit() and text.isascii() and (text[0] != "0" or text == "0"):
        return text
    return str(parse_integer(text))


def _copy_number(text: str) -> str:
    return repr(parse_number(text))


def _copy_boolean(text: str) -> str:
    return "t" if parse_boolean(text) else "f"


def _copy_date(text: str) -> str:
    return parse_date(text).isoformat()


def _copy_datetime(text: str) -> str:
    return parse_datetime(text).isoformat()


COPY_CONVERTERS: dict[FieldType, Callable[[str], str] | None] = {
    FieldType.string: None,
    FieldType.integer: _copy_integer,
    FieldType.number: _copy_number,
    FieldType.boolean: _copy_boolean,
    FieldType.date: _copy_date,
    FieldType.datetime: _copy_datetime,
}


def copy_escape(text: str) -> str:
    """A string as PostgreSQL's COPY text format wants it."""
    if "\x00" in text:
        raise ValueError("含有 NUL 字符")
    return text.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")
