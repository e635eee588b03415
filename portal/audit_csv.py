"""A time range of the log as CSV for spreadsheet review: UTF-8 with a BOM (so a Chinese
spreadsheet opens it as UTF-8), one header row naming each column in Chinese and by its
API name, one row per event in seq order, `fields` and `detail` as their stored JSON.
Cells that a spreadsheet would run as a formula are prefixed with `'` (OWASP); the signed
bundle, not this file, is the evidence."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from typing import Any

from sqlalchemy.engine import Engine

from audit.bundle import Progress, Span
from audit.store import COLUMNS, stream_rows

BOM = "\ufeff"
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
TITLES = {
    "seq": "序号",
    "ts": "时间（UTC）",
    "request_id": "请求编号",
    "actor": "操作者",
    "client_id": "应用",
    "ip": "来源地址",
    "action": "操作",
    "resource": "资源",
    "fields": "字段与处理方式",
    "row_count": "返回行数",
    "purpose": "用途",
    "grant_id": "授权编号",
    "grant_version": "授权版本",
    "outcome": "结果",
    "status": "状态码",
    "detail": "详情",
    "prev_hash": "前一事件哈希",
    "hash": "事件哈希",
}
_TS = COLUMNS.index("ts")
_BATCH = 500


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, str) and value.startswith(FORMULA_START):
        return "'" + value
    return value


def csv_lines(
    engine: Engine, span: Span, progress: Progress, *, since: str | None, until: str | None
) -> Iterator[bytes]:
    """The CSV of the events of `span` whose time lies in [since, until], streamed."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow([f"{TITLES[c]}（{c}）" for c in COLUMNS])
    yield (BOM + buffer.getvalue()).encode()
    if span.first is None or span.last is None:
        progress.complete = True
        return
    pending = 0
    buffer.seek(0)
    buffer.truncate()
    for row in stream_rows(engine, after=span.first - 1, through=span.last):
        ts = row[_TS]
        if (since is not None and ts < since) or (until is not None and ts > until):
            continue
        writer.writerow([_cell(v) for v in row])
        progress.rows += 1
        pending += 1
        if pending == _BATCH:
            yield buffer.getvalue().encode()
            buffer.seek(0)
            buffer.truncate()
            pending = 0
    progress.complete = True
    if pending:
        yield buffer.getvalue().encode()
