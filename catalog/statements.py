"""SQL for records queries, built with SQLAlchemy Core, compiled once per shape, run on
the driver's own cursor.

Identifiers come only from the field dictionary and every value is a bound parameter;
nothing a client sends is ever spliced into SQL text. A statement's *shape* (table,
columns, filter fields and operators, order, whether there is a cursor) decides its SQL;
values only fill the parameters. Caching the compiled SQL per shape and reading rows
straight off the DBAPI cursor keeps a 100-row page close to the cost of the bare query.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from catalog.cursors import BoundCursors
from catalog.hosted import HostedDataset
from catalog.models import FieldType
from catalog.query import Filter, RecordQuery, encode_cursor

LIKE_ESCAPE = "/"


@dataclass(frozen=True, slots=True)
class CompiledStatement:
    sql: str
    parameter_order: tuple[str, ...] | None  # for positional paramstyles (SQLite's "?")
    width: int  # leading columns that are output fields; the rest are order keys
    key_positions: tuple[int, ...]  # where each order key sits in a result row
    boolean_positions: tuple[int, ...]  # SQLite hands booleans back as 0/1
    constants: Mapping[str, Any]  # parameters the dialect adds itself (SQLite's OFFSET 0)

    def parameters(self, values: Mapping[str, Any]) -> Mapping[str, Any] | tuple[Any, ...]:
        if self.parameter_order is None:
            return values
        constants = self.constants
        return tuple(
            values[name] if name in values else constants[name] for name in self.parameter_order
        )


def _like_pattern(op: str, text: str) -> str:
    escaped = (
        text.replace(LIKE_ESCAPE, LIKE_ESCAPE * 2)
        .replace("%", LIKE_ESCAPE + "%")
        .replace("_", LIKE_ESCAPE + "_")
    )
    return f"%{escaped}%" if op == "contains" else f"{escaped}%"


def bound_values(query: RecordQuery, row_filter: Mapping[str, Any]) -> dict[str, Any]:
    """The parameter values of a query, named as `_build` names its bind parameters."""
    values: dict[str, Any] = {}
    for i, f in enumerate(query.filters):
        if f.op == "in":
            for j, item in enumerate(f.value):
                values[f"f{i}_{j}"] = item
        elif f.op in ("contains", "startswith"):
            values[f"f{i}"] = _like_pattern(f.op, f.value)
        elif f.op != "isnull":
            values[f"f{i}"] = f.value
    for i, value in enumerate(row_filter.values()):
        values[f"r{i}"] = value
    if query.after is not None:
        for i, value in enumerate(query.after):
            if value is not None:
                values[f"a{i}"] = value
    if query.search is not None:
        values["q"] = _like_pattern("contains", query.search[1])
    return values


def condition(
    column: sa.ColumnElement, op: str, name: str, value: Any, *, bind_value: bool = False
) -> sa.ColumnElement:
    """The SQL of one filter. Parameters are named (so compiled SQL can be cached per
    shape); with `bind_value` they also carry the value, for statements run once."""

    def param(key: str, v: Any) -> sa.BindParameter:
        return sa.bindparam(key, v) if bind_value else sa.bindparam(key)

    if op == "in":
        return column.in_([param(f"{name}_{j}", item) for j, item in enumerate(value)])
    if op == "isnull":
        return column.is_(None) if value else column.is_not(None)
    if op in ("contains", "startswith"):
        return column.like(param(name, _like_pattern(op, value)), escape=LIKE_ESCAPE)
    parameter = param(name, value)
    return {
        "eq": column.__eq__,
        "ne": column.__ne__,
        "gt": column.__gt__,
        "gte": column.__ge__,
        "lt": column.__lt__,
        "lte": column.__le__,
    }[op](parameter)


def _has_nulls(hosted: HostedDataset, name: str) -> bool:
    field = hosted.by_name.get(name)  # None: the row key, never null
    return field is not None and field.has_nulls


def _after(hosted: HostedDataset, query: RecordQuery) -> sa.ColumnElement[bool]:
    """Rows strictly after the cursor in the query's order (nulls sort last)."""
    assert query.after is not None
    alternatives = []
    equal: list[sa.ColumnElement[bool]] = []
    for i, ((name, desc), value) in enumerate(zip(query.order, query.after, strict=True)):
        column = hosted.table.c[name]
        if value is None:
            equal.append(column.is_(None))
            continue  # nothing sorts after a null within its group
        parameter = sa.bindparam(f"a{i}")
        after = column < parameter if desc else column > parameter
        if _has_nulls(hosted, name):
            after = sa.or_(after, column.is_(None))
        alternatives.append(sa.and_(*equal, after) if equal else after)
        equal.append(column == parameter)
    return sa.or_(*alternatives) if alternatives else sa.false()


def _conditions(
    hosted: HostedDataset, query: RecordQuery, row_filter: Mapping[str, Any]
) -> list[sa.ColumnElement[bool]]:
    table = hosted.table
    conditions = [
        condition(table.c[f.field], f.op, f"f{i}", f.value) for i, f in enumerate(query.filters)
    ]
    conditions.extend(table.c[name] == sa.bindparam(f"r{i}") for i, name in enumerate(row_filter))
    if query.search is not None:
        conditions.append(
            sa.or_(
                *(
                    table.c[name].like(sa.bindparam("q"), escape=LIKE_ESCAPE)
                    for name in query.search[0]
                )
            )
        )
    if query.after is not None:
        conditions.append(_after(hosted, query))
    return conditions


def build_select(
    hosted: HostedDataset, query: RecordQuery, row_filter: Mapping[str, Any]
) -> tuple[sa.Select, list[str]]:
    """The Core statement for `query`, and the names of the columns it selects."""
    table = hosted.table
    names = list(query.fields)
    names.extend(name for name, _ in query.order if name not in names)
    conditions = _conditions(hosted, query, row_filter)
    order_by = []
    for name, desc in query.order:
        clause = table.c[name].desc() if desc else table.c[name].asc()
        if _has_nulls(hosted, name):
            clause = clause.nulls_last()
        order_by.append(clause)
    statement = sa.select(*(table.c[n] for n in names)).where(*conditions).order_by(*order_by)
    if query.limit:
        # A literal, not a parameter: PostgreSQL's generic plan for a prepared statement
        # does not know a bound LIMIT and may sort the whole table instead of walking the
        # index. The value is a validated int. One more row tells whether a page follows.
        statement = statement.limit(sa.literal_column(str(int(query.limit) + 1)))
    if query.offset:
        # A literal for the same reason; the order ends with a unique key, so a window is
        # exact on a published version (whose table never changes).
        statement = statement.offset(sa.literal_column(str(int(query.offset))))
    return statement, names


def count_rows(
    engine: Engine, hosted: HostedDataset, query: RecordQuery, row_filter: Mapping[str, Any]
) -> int:
    """How many rows `query`'s filters, search and the row filter let through (CKAN's
    `total`: what the caller may see, never the table's size)."""
    plain = replace(query, after=None)
    statement = (
        sa.select(sa.func.count())
        .select_from(hosted.table)
        .where(*_conditions(hosted, plain, row_filter))
    )
    with engine.connect() as conn:
        return int(conn.execute(statement, bound_values(plain, row_filter)).scalar_one())


class StatementCache:
    """Compiled SQL per query shape, per process."""

    def __init__(self, engine: Engine, *, size: int = 1024) -> None:
        self._dialect = engine.dialect
        self._size = size
        self._compiled: dict[tuple, CompiledStatement] = {}
        self._lock = threading.Lock()

    @staticmethod
    def shape(hosted: HostedDataset, query: RecordQuery, row_filter: Mapping[str, Any]) -> tuple:
        return (
            hosted.table.name,
            query.fields,
            query.order,
            tuple(
                (f.field, f.op, len(f.value) if f.op == "in" else f.op == "isnull" and f.value)
                for f in query.filters
            ),
            tuple(row_filter),
            None if query.after is None else tuple(v is None for v in query.after),
            query.limit,
            query.offset,
            None if query.search is None else query.search[0],
        )

    def get(
        self, hosted: HostedDataset, query: RecordQuery, row_filter: Mapping[str, Any]
    ) -> CompiledStatement:
        key = self.shape(hosted, query, row_filter)
        compiled = self._compiled.get(key)
        if compiled is None:
            compiled = self._compile(hosted, query, row_filter)
            with self._lock:
                if len(self._compiled) >= self._size:
                    self._compiled.clear()
                self._compiled[key] = compiled
        return compiled

    def _compile(
        self, hosted: HostedDataset, query: RecordQuery, row_filter: Mapping[str, Any]
    ) -> CompiledStatement:
        statement, names = build_select(hosted, query, row_filter)
        compiled = statement.compile(dialect=self._dialect)
        positional = compiled.positiontup if self._dialect.positional else None
        booleans: tuple[int, ...] = ()
        if self._dialect.name == "sqlite":
            booleans = tuple(
                i
                for i, n in enumerate(names)
                if n in hosted.by_name and hosted.by_name[n].type is FieldType.boolean
            )
        return CompiledStatement(
            sql=compiled.string,
            parameter_order=tuple(positional) if positional is not None else None,
            width=len(query.fields),
            key_positions=tuple(names.index(name) for name, _ in query.order),
            boolean_positions=booleans,
            constants={k: v for k, v in compiled.params.items() if v is not None},
        )


def _as_booleans(rows: list[Any], positions: Sequence[int]) -> list[Any]:
    fixed = []
    for row in rows:
        row = list(row)
        for p in positions:
            if row[p] is not None:
                row[p] = bool(row[p])
        fixed.append(row)
    return fixed


@dataclass(frozen=True, slots=True)
class Page:
    rows: Sequence[Sequence[Any]]  # output fields only, in query.fields order
    next_cursor: str | None


def fetch_page(
    engine: Engine,
    statements: StatementCache,
    hosted: HostedDataset,
    query: RecordQuery,
    *,
    row_filter: Mapping[str, Any] | None = None,
    cursors: BoundCursors | None = None,
) -> Page:
    """One page; `cursors` (the request's binding) seals its `next_cursor`."""
    row_filter = row_filter or {}
    compiled = statements.get(hosted, query, row_filter)
    rows = fetch_all(engine, compiled, bound_values(query, row_filter))
    if compiled.boolean_positions:
        rows = _as_booleans(rows, compiled.boolean_positions)
    next_cursor = None
    if len(rows) > query.limit:
        rows = rows[: query.limit]
        last = rows[-1]
        if query.offset is None:  # a window (CKAN's offset) has no cursor
            if cursors is None:
                raise ValueError("a page with a successor needs a cursor binding")
            next_cursor = encode_cursor(query, [last[i] for i in compiled.key_positions], cursors)
    if rows and compiled.width < len(rows[0]):
        rows = [row[: compiled.width] for row in rows]
    return Page(rows, next_cursor)


def fetch_all(engine: Engine, compiled: CompiledStatement, values: Mapping[str, Any]) -> list[Any]:
    """One statement on a pooled connection, which is back in the pool (its transaction
    ended) before the rows are returned."""
    connection = engine.raw_connection()
    try:
        cursor = connection.cursor()
        cursor.execute(compiled.sql, compiled.parameters(values))
        rows = cursor.fetchall()
        cursor.close()
    except engine.dialect.loaded_dbapi.Error as exc:
        if engine.dialect.is_disconnect(exc, connection.dbapi_connection, None):
            # The server is gone: drop the connection instead of handing the pool one
            # whose rollback fails (and is logged with a traceback) on its way back.
            connection.invalidate(exc)
        raise
    finally:
        connection.close()
    return rows


def stream_rows(
    engine: Engine,
    statements: StatementCache,
    hosted: HostedDataset,
    query: RecordQuery,
    *,
    row_filter: Mapping[str, Any] | None = None,
    batch: int = 2000,
) -> Iterator[list[Any]]:
    """Every matching row in the query's order, `batch` rows at a time, as keyset chunks.

    Each chunk is one short read on a connection of its own, returned to the pool before
    the chunk is handed on: a client that reads slowly, or not at all, holds no connection
    and no transaction, only the chunk in hand (a server-side cursor would hold both for
    as long as the client takes). The order ends with a unique key, so chunks neither
    skip nor repeat a row, and a published version's table never changes, so they add up
    to one consistent export."""
    row_filter = row_filter or {}
    chunk = replace(query, limit=batch, after=None)
    while True:
        compiled = statements.get(hosted, chunk, row_filter)
        rows = fetch_all(engine, compiled, bound_values(chunk, row_filter))
        if not rows:
            return
        more = len(rows) > batch  # the statement reads one row more than it hands on
        if more:
            rows = rows[:batch]
        last = rows[-1]
        after = tuple(last[i] for i in compiled.key_positions)  # storage form, as bound
        if compiled.boolean_positions:
            rows = _as_booleans(rows, compiled.boolean_positions)
        if compiled.width < len(rows[0]):
            rows = [row[: compiled.width] for row in rows]
        yield rows
        if not more:
            return
        chunk = replace(chunk, after=after)


def fetch_one(
    engine: Engine,
    statements: StatementCache,
    hosted: HostedDataset,
    query: RecordQuery,
    key: Any,
    *,
    row_filter: Mapping[str, Any] | None = None,
) -> Sequence[Any] | None:
    """The row whose primary key is `key` (already in storage form), if the query's
    filters and the row filter let it through."""
    keyed = RecordQuery(
        fields=query.fields,
        filters=(*query.filters, Filter(hosted.primary_key, "eq", key)),
        order=query.order,
        limit=1,
    )
    page = fetch_page(engine, statements, hosted, keyed, row_filter=row_filter)
    return page.rows[0] if page.rows else None
