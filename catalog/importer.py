"""Importing a dataset package into a new hosted version, all or nothing.

The rows go into a fresh typed table inside the same transaction that publishes the
version, so a reader sees either the previous version or the whole new one. Rows are
validated in Python as they stream (to name the line, field and reason of any failure) and
written in bulk: PostgreSQL `COPY`, SQLite `executemany`. On PostgreSQL a plain CSV (no
quotes, no carriage returns) of an open dataset first goes the fast way, as it is, checked
a column at a time (catalog.csv_copy); whatever that path cannot vouch for is rolled back
to a savepoint and loaded row by row, which names the line, field and reason.
"""

from __future__ import annotations

import csv
import hashlib
import io
import random
import re
import secrets
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import nullcontext
from dataclasses import dataclass
from dataclasses import replace as changed
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from psycopg.copy import QueuedLibpqWriter
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from catalog import csv_copy, sources
from catalog.hosted import ROW_COLUMN, SUBJECT_COLUMN, build_table, table_name
from catalog.models import Dataset, DatasetField, DatasetVersion, OpenType
from catalog.package import FieldSpec, PackageError, PackageSpec, read_package
from catalog.values import COPY_CONVERTERS, SQLITE_CONVERTERS, TYPE_NAMES, copy_escape
from kernel.clock import utcnow

ProgressCallback = Callable[[int, int], None]
"""Called now and then with (bytes read, bytes in the file)."""

BATCH_ROWS = 10_000
KEEP_VERSIONS = 2  # the current one and the one before it; see HostedCatalog


@dataclass(frozen=True, slots=True)
class ImportResult:
    dataset_id: str
    version: int
    row_count: int
    seconds: float
    unchanged: bool = False
    warnings: tuple[str, ...] = ()  # from the package (PackageSpec.warnings)
    plain_copy: bool = False  # loaded the fast way (catalog.csv_copy), not row by row

    @property
    def rows_per_second(self) -> float:
        return self.row_count / self.seconds if self.seconds > 0 else float("inf")


def package_digest(spec: PackageSpec, descriptor: Path) -> str:
    """The package's SHA-256 (see _scan)."""
    return _scan(spec, descriptor)[0]


def _scan(spec: PackageSpec, descriptor: Path) -> tuple[str, bool]:
    """The package's SHA-256, and whether the data file is plain (no quote, no carriage
    return: see catalog.csv_copy). The same pass refuses a data file holding a NUL byte (in
    UTF-8 the only encoding of U+0000): PostgreSQL cannot store one, and SQLite would, so
    both refuse it here, before anything is written."""
    digest = hashlib.sha256(descriptor.read_bytes())
    nul = False
    plain = True
    with spec.data_path.open("rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
            nul = nul or b"\x00" in chunk
            plain = plain and b'"' not in chunk and b"\r" not in chunk
    if nul:
        raise _nul_error(spec)
    return digest.hexdigest(), plain


def _nul_error(spec: PackageSpec) -> PackageError:
    """Where the first NUL is: line and field (never the value)."""
    source = spec.data_path.name
    try:
        with spec.data_path.open(encoding="utf-8-sig", errors="replace", newline="") as text:
            reader = csv.reader(text)
            header = next(reader, [])
            for i, name in enumerate(header):
                if "\x00" in name:
                    return PackageError(f"{source} 第 1 行：第 {i + 1} 列的列名含有 NUL 字符")
            for row in reader:
                for name, value in zip(header, row, strict=False):
                    if "\x00" in value:
                        return PackageError(
                            f"{source} 第 {reader.line_num} 行，字段 {name}：含有 NUL 字符"
                        )
    except csv.Error:
        pass
    return PackageError(f"{source}：含有 NUL 字符")


def import_package(
    engine: Engine,
    path: Path,
    *,
    replace: bool = False,
    skip_unchanged: bool = False,
    progress: ProgressCallback | None = None,
    subject_hmac: Callable[[str], str] | None = None,
) -> ImportResult:
    """Import the package at `path`. Raises PackageError (nothing changed) on bad input.

    `replace` publishes a new version of an existing dataset; without it an existing
    dataset is an error. `skip_unchanged` makes re-importing identical files a no-op.
    `subject_hmac` keys the subject_key column's values for personal authorization
    (without it the HMAC column stays empty and no person matches any row).
    """
    started = time.perf_counter()
    spec = read_package(path)
    converting = sources.needs_conversion(spec)  # an .xlsx, a GBK CSV, JSON: to CSV first
    with (
        tempfile.TemporaryDirectory(prefix="opengate-source-")
        if converting
        else nullcontext(None) as folder
    ):
        if folder is not None:
            converted = sources.convert(spec, Path(folder))
            spec = changed(spec, data_path=converted.path, line_map=converted.line_map)
        return _import(
            engine,
            path,
            spec,
            replace=replace,
            skip_unchanged=skip_unchanged,
            progress=progress,
            subject_hmac=subject_hmac,
            started=started,
        )


def _import(
    engine: Engine,
    path: Path,
    spec: PackageSpec,
    *,
    replace: bool,
    skip_unchanged: bool,
    progress: ProgressCallback | None,
    subject_hmac: Callable[[str], str] | None,
    started: float,
) -> ImportResult:
    descriptor = path / "datapackage.json" if path.is_dir() else path
    digest, plain = _scan(spec, descriptor)
    try:
        with engine.begin() as conn:
            current = _lock_current(conn, spec.name)
            if current is not None:
                if skip_unchanged and current.source_sha256 == digest:
                    return ImportResult(
                        spec.name, current.version, current.row_count, 0, True, spec.warnings
                    )
                if not replace:
                    raise PackageError(
                        f"数据集 {spec.name} 已存在；如要发布它的新版本，命令行请加 --replace，"
                        "网页上传请勾选“发布已有数据集的新版本”"
                    )
            version = 1 if current is None else current.version + 1
            # Open data needs no row key: every caller receives every key in clear.
            row_key = spec.open_type is not OpenType.unconditional
            table = build_table(
                table_name(spec.name, version), spec.fields, conn.dialect.name, row_key=row_key
            )
            table.create(conn)
            loaded = _load_plain(conn, spec, table, progress) if plain else None
            plain_copy = loaded is not None
            if loaded is None:
                loaded = _load_rows(conn, spec, table, progress, subject_hmac)
                _add_primary_key(conn, table, spec.primary_key)
            row_count, has_nulls = loaded
            _publish(conn, spec, version, table.name, row_count, digest, has_nulls)
    except IntegrityError:
        raise PackageError(f"数据集 {spec.name} 正被他人同时导入，请稍后重试") from None
    seconds = time.perf_counter() - started
    return ImportResult(
        spec.name, version, row_count, seconds, warnings=spec.warnings, plain_copy=plain_copy
    )


def _lock_current(conn: Connection, dataset_id: str) -> DatasetVersion | None:
    """The current version of the dataset, with its row locked against concurrent imports."""
    query = sa.select(Dataset.current_version, Dataset.kind).where(Dataset.id == dataset_id)
    if conn.dialect.name == "postgresql":
        query = query.with_for_update()
    found = conn.execute(query).first()
    if found is None:
        return None
    version, kind = found
    if kind != "table":
        raise PackageError(f"名称 {dataset_id} 已是一个接口服务，数据集须另取名称")
    with Session(bind=conn) as session:
        return session.exec(
            select(DatasetVersion).where(
                DatasetVersion.dataset_id == dataset_id, DatasetVersion.version == version
            )
        ).one()


def _rows(
    spec: PackageSpec,
    converters: list[Callable[[str], Any] | None],
    has_nulls: list[bool],
    progress: ProgressCallback | None,
    *,
    empty_as_none: bool,
    where: list[int] | None = None,
) -> Iterator[list[Any]]:
    """Rows in schema order, typed columns converted in place, empty cells None (or left
    as "" when the writer maps those to NULL itself). Raises PackageError naming the line,
    field and reason. `where[0]` follows the CSV line of the row last yielded."""
    fields = spec.fields
    where = where if where is not None else [0]
    source = spec.data_path.name
    shown_line = _source_line(spec)
    total = spec.data_path.stat().st_size
    pk_pos = next(i for i, f in enumerate(fields) if f.name == spec.primary_key)
    typed = [(i, conv) for i, conv in enumerate(converters) if conv is not None]
    seen_keys: set[Any] = set()
    with spec.data_path.open("rb") as raw:
        text = io.TextIOWrapper(raw, encoding="utf-8-sig", newline="")
        reader = csv.reader(text)
        try:
            header = next(reader)
        except StopIteration:
            raise PackageError(f"{source}：文件为空（第 1 行须为表头）") from None
        except UnicodeDecodeError:
            raise PackageError(f"{source} 第 1 行：表头不是有效的 UTF-8 编码{GBK_HINT}") from None
        order = _column_order(source, header, spec)
        width = len(header)
        in_order = order == list(range(len(fields)))
        line = 1
        try:
            for count, row in enumerate(reader, start=1):
                line = reader.line_num
                if len(row) != width:
                    raise PackageError(
                        f"{source} 第 {shown_line(line)} 行：有 {len(row)} 个值，"
                        f"表头却有 {width} 列"
                    )
                if not in_order:
                    row = [row[i] for i in order]
                if "" in row:
                    for i, v in enumerate(row):
                        if v == "":
                            has_nulls[i] = True
                            if empty_as_none:
                                row[i] = None
                i = -1
                try:
                    for i, conv in typed:
                        v = row[i]
                        if v:
                            row[i] = conv(v)
                except (ValueError, OverflowError):
                    raise _value_error(source, shown_line(line), fields[i], row[i]) from None
                key = row[pk_pos]
                if key is None or key == "":
                    raise PackageError(
                        f"{source} 第 {shown_line(line)} 行，字段 {spec.primary_key}：主键为空"
                    )
                if key in seen_keys:
                    shown = f" {str(key)[:40]!r}" if fields[pk_pos].level <= 2 else ""
                    raise PackageError(
                        f"{source} 第 {shown_line(line)} 行，字段 {spec.primary_key}：主键{shown} "
                        "与前面某一行重复"
                    )
                seen_keys.add(key)
                where[0] = line
                if progress is not None and count % 50_000 == 0:
                    progress(raw.tell(), total)
                yield row
        except UnicodeDecodeError:
            raise PackageError(
                f"{source} 第 {shown_line(line + 1)} 行附近：不是有效的 UTF-8 编码{GBK_HINT}"
            ) from None
        except csv.Error as exc:
            raise PackageError(f"{source} 第 {reader.line_num} 行：{_csv_reason(exc)}") from None
    if progress is not None:
        progress(total, total)


GBK_HINT = '（如为 GBK/GB18030 编码，请在 resource 中声明 encoding，或写 "auto" 自动识别）'


def _source_line(spec: PackageSpec) -> Callable[[int], int]:
    """The department file's row of a line of the (converted) CSV."""
    lines = spec.line_map
    if lines is None:
        return lambda line: line
    return lambda line: lines[line - 1] if 0 < line <= len(lines) else line


def _column_order(source: str, header: list[str], spec: PackageSpec) -> list[int]:
    header = sources.header_names(source, header, spec.fields)  # titles name columns too
    position: dict[str, int] = {}
    for i, name in enumerate(header):
        if name in position:
            raise PackageError(f"{source} 第 1 行：列 {name} 出现了两次")
        position[name] = i
    names = {f.name for f in spec.fields}
    for name in header:
        if name not in names:
            raise PackageError(
                f"{source} 第 1 行：列 {name} 不在 schema 中，可选："
                f"{'、'.join(f.name for f in spec.fields)}"
            )
    for f in spec.fields:
        if f.name not in position:
            raise PackageError(f"{source} 第 1 行：缺少列 {f.name}")
    return [position[f.name] for f in spec.fields]


def _value_error(source: str, line: int, field: FieldSpec, value: str) -> PackageError:
    # Values of sensitive fields stay out of messages and logs.
    shown = f"值 {value[:40]!r}" if field.level <= 2 else "值"
    return PackageError(
        f"{source} 第 {line} 行，字段 {field.name}：{shown} 不是{TYPE_NAMES[field.type]}"
    )


def _csv_reason(exc: csv.Error) -> str:
    """The csv module's reasons (English) in the message's language."""
    text = str(exc)
    if text.startswith("field larger than field limit"):
        return f"单元格超过 csv 的长度上限（{text.rsplit('(', 1)[-1].rstrip(')')} 个字符）"
    if text == "unexpected end of data":
        return "引号未闭合，文件意外结束"
    return f"CSV 格式有误（{text}）"


# A line needs per-value escaping for COPY only if it holds one of these (or a stray tab).
COPY_SPECIAL = re.compile(r"[\\\n\r\x00]")


def _copy_line(row: list[str], width: int, spec: PackageSpec, line: int) -> str:
    text = "\t".join(row)
    if text.count("\t") == width - 1 and not COPY_SPECIAL.search(text):
        return text
    for f, value in zip(spec.fields, row, strict=False):  # the row may end in the HMAC
        if "\x00" in value:
            raise PackageError(f"{spec.data_path.name} 第 {line} 行，字段 {f.name}：含有 NUL 字符")
    return "\t".join(copy_escape(v) for v in row)


def _with_subject_hmac(
    rows: Iterator[list[Any]],
    spec: PackageSpec,
    subject_hmac: Callable[[str], str] | None,
    *,
    empty: Any,
) -> Iterator[list[Any]]:
    position = next((i for i, f in enumerate(spec.fields) if f.subject_key), None)
    if position is None:
        yield from rows
        return
    for row in rows:
        value = row[position]
        row.append(subject_hmac(value) if subject_hmac is not None and value else empty)
        yield row


def _with_row_key(
    rows: Iterator[list[Any]], table: sa.Table, *, as_text: bool = False
) -> Iterator[list[Any]]:
    """Each row with its row key (catalog.hosted.ROW_COLUMN) when the table has one: random,
    unique, from a generator seeded by the system's randomness (the keys are never shown,
    so only their order matters, and it says nothing about any value)."""
    if ROW_COLUMN not in table.c:
        yield from rows
        return
    draw = random.Random(secrets.randbits(128)).getrandbits  # noqa: S311 (see above)
    used: set[int] = set()
    for row in rows:
        key = draw(62)
        while key in used:
            key = draw(62)
        used.add(key)
        row.append(str(key) if as_text else key)
        yield row


def _load_rows(
    conn: Connection,
    spec: PackageSpec,
    table: sa.Table,
    progress: ProgressCallback | None,
    subject_hmac: Callable[[str], str] | None = None,
) -> tuple[int, list[bool]]:
    has_nulls = [False] * len(spec.fields)
    dbapi = conn.connection.dbapi_connection
    quote = conn.dialect.identifier_preparer.quote
    columns = ", ".join(quote(c.name) for c in table.columns)
    width = len(table.columns)
    count = 0
    if conn.dialect.name == "postgresql":
        converters = [COPY_CONVERTERS[f.type] for f in spec.fields]
        # NULL '': an empty cell is null, as in the package format, with no rewriting.
        statement = f"COPY {quote(table.name)} ({columns}) FROM STDIN (NULL '')"
        where = [0]
        rows = _with_row_key(
            _with_subject_hmac(
                _rows(spec, converters, has_nulls, progress, empty_as_none=False, where=where),
                spec,
                subject_hmac,
                empty="",
            ),
            table,
            as_text=True,
        )
        # The queued writer sends to the server from its own thread while this one parses
        # the next batch.
        with (
            dbapi.cursor() as cursor,  # type: ignore[union-attr]
            cursor.copy(statement, writer=QueuedLibpqWriter(cursor)) as copy,
        ):
            lines: list[str] = []
            for row in rows:
                lines.append(_copy_line(row, width, spec, where[0]))
                if len(lines) == BATCH_ROWS:
                    copy.write("\n".join(lines) + "\n")
                    count += len(lines)
                    lines.clear()
            if lines:
                copy.write("\n".join(lines) + "\n")
                count += len(lines)
    else:
        converters = [SQLITE_CONVERTERS[f.type] for f in spec.fields]
        marks = ", ".join("?" for _ in table.columns)
        # Identifiers come from the validated schema, quoted; values are bound.
        statement = f"INSERT INTO {quote(table.name)} ({columns}) VALUES ({marks})"  # noqa: S608
        cursor = dbapi.cursor()
        batch: list[list[Any]] = []
        rows = _rows(spec, converters, has_nulls, progress, empty_as_none=True)
        keyed = _with_row_key(_with_subject_hmac(rows, spec, subject_hmac, empty=None), table)
        for row in keyed:
            batch.append(row)
            if len(batch) == BATCH_ROWS:
                cursor.executemany(statement, batch)
                count += len(batch)
                batch.clear()
        if batch:
            cursor.executemany(statement, batch)
            count += len(batch)
        cursor.close()
    return count, has_nulls


# The row key as _with_row_key draws it, 62 random bits, here from PostgreSQL's random():
# its per-backend state is seeded from the system's strong randomness at first use (PG 15:
# pg_prng_strong_seed; nothing here calls setseed). Two draws of 31 bits each; a repeat
# fails the unique index built after the load, and the row loader then draws anew.
RANDOM_ROW_KEY = (
    "((floor(random() * 2147483648)::bigint << 31) | floor(random() * 2147483648)::bigint)"
)


def _load_plain(
    conn: Connection, spec: PackageSpec, table: sa.Table, progress: ProgressCallback | None
) -> tuple[int, list[bool]] | None:
    """The rows and key index through catalog.csv_copy, or None (and nothing written) when
    that path cannot vouch for the file. Only on PostgreSQL, for tables whose columns are
    the file's and perhaps the row key (no subject HMAC: that needs Python per row), and
    files of two columns or more (a blank line is one empty cell in a one-column file, but
    no row at all for csv.reader)."""
    if conn.dialect.name != "postgresql" or len(spec.fields) < 2:
        return None
    if SUBJECT_COLUMN in table.c:
        return None
    dbapi = conn.connection.dbapi_connection
    info = dbapi.info  # type: ignore[union-attr]
    if info.parameter_status("server_encoding") != "UTF8" or info.encoding != "utf-8":
        return None  # the server must check UTF-8 as the row loader does
    try:
        names = csv_copy.header(spec.data_path)
        order = _column_order(spec.data_path.name, names, spec)
    except (csv_copy.RefusedError, PackageError):
        return None
    in_file = [spec.fields[order.index(i)] for i in range(len(names))]
    quote = conn.dialect.identifier_preparer.quote
    columns = ", ".join(quote(f.name) for f in in_file)
    statement = f"COPY {quote(table.name)} ({columns}) FROM STDIN (FORMAT csv)"
    savepoint = conn.begin_nested()
    try:
        if ROW_COLUMN in table.c:  # not in the file: drawn by the server while COPY runs
            conn.exec_driver_sql(
                f"ALTER TABLE {quote(table.name)} ALTER COLUMN {quote(ROW_COLUMN)} "
                f"SET DEFAULT {RANDOM_ROW_KEY}"
            )
        with dbapi.cursor() as cursor:  # type: ignore[union-attr]
            rows, nulls = csv_copy.copy_plain_csv(
                cursor, statement, spec.data_path, in_file, progress
            )
        if ROW_COLUMN in table.c:
            conn.exec_driver_sql(
                f"ALTER TABLE {quote(table.name)} ALTER COLUMN {quote(ROW_COLUMN)} DROP DEFAULT"
            )
        _add_primary_key(conn, table, spec.primary_key)
    except (csv_copy.RefusedError, sa.exc.DBAPIError):
        savepoint.rollback()
        return None
    savepoint.commit()
    by_name = dict(zip((f.name for f in in_file), nulls, strict=True))
    return rows, [by_name[f.name] for f in spec.fields]


def _add_primary_key(conn: Connection, table: sa.Table, primary_key: str) -> None:
    # Built after the load: one index build is much cheaper than a million index inserts.
    quote = conn.dialect.identifier_preparer.quote
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql(
            f"ALTER TABLE {quote(table.name)} ADD PRIMARY KEY ({quote(primary_key)})"
        )
        conn.exec_driver_sql(f"ANALYZE {quote(table.name)}")
    else:
        conn.exec_driver_sql(
            f"CREATE UNIQUE INDEX {quote('ux_' + table.name)} "
            f"ON {quote(table.name)} ({quote(primary_key)})"
        )
    if SUBJECT_COLUMN in table.c:
        conn.exec_driver_sql(
            f"CREATE INDEX {quote('ix_' + table.name + '_subject')} "
            f"ON {quote(table.name)} ({quote(SUBJECT_COLUMN)})"
        )
    if ROW_COLUMN in table.c:
        conn.exec_driver_sql(
            f"CREATE UNIQUE INDEX {quote('ux_' + table.name + '_row')} "
            f"ON {quote(table.name)} ({quote(ROW_COLUMN)})"
        )


def _publish(
    conn: Connection,
    spec: PackageSpec,
    version: int,
    table: str,
    row_count: int,
    digest: str,
    has_nulls: list[bool],
) -> None:
    now = utcnow()
    search_text = " ".join(
        [spec.name, spec.title, spec.description, spec.publisher, spec.theme, *spec.keywords]
    ).lower()
    with Session(bind=conn) as session:
        dataset = session.get(Dataset, spec.name)
        if dataset is None:
            dataset = Dataset(
                id=spec.name,
                created_at=now,
                title=spec.title,
                open_type=spec.open_type.value,
                level=spec.level,
                current_version=version,
                row_count=row_count,
            )
        dataset.title = spec.title
        dataset.description = spec.description
        dataset.publisher = spec.publisher
        dataset.theme = spec.theme
        dataset.keywords = list(spec.keywords)
        dataset.open_type = spec.open_type.value
        dataset.level = spec.level
        dataset.zone = spec.zone
        dataset.license = spec.license
        dataset.update_frequency = spec.update_frequency
        dataset.current_version = version
        dataset.row_count = row_count
        dataset.search_text = search_text
        dataset.updated_at = now
        session.add(dataset)
        session.add(
            DatasetVersion(
                dataset_id=spec.name,
                version=version,
                table_name=table,
                row_count=row_count,
                source_sha256=digest,
                imported_at=now,
            )
        )
        for position, (f, nulls) in enumerate(zip(spec.fields, has_nulls, strict=True)):
            session.add(
                DatasetField(
                    dataset_id=spec.name,
                    version=version,
                    position=position,
                    name=f.name,
                    type=f.type.value,
                    title=f.title,
                    description=f.description,
                    level=f.level,
                    pii=f.pii.value,
                    subject_key=f.subject_key,
                    primary_key=f.name == spec.primary_key,
                    has_nulls=nulls,
                )
            )
        session.flush()
        stale = session.exec(
            select(DatasetVersion).where(
                DatasetVersion.dataset_id == spec.name,
                DatasetVersion.version <= version - KEEP_VERSIONS,
                DatasetVersion.dropped == False,  # noqa: E712
            )
        ).all()
        for old in stale:
            conn.exec_driver_sql(
                f"DROP TABLE IF EXISTS {conn.dialect.identifier_preparer.quote(old.table_name)}"
            )
            old.dropped = True
            session.add(old)
        session.flush()
