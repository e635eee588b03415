"""The one registry of data-answer formats, used by records, one record and export alike.

A renderer is registered once with its name (the `format=` value), its media type, the
Accept media types that choose it, its file extension (an export's Content-Disposition)
and three writers: a records page, one record, and a stream (head, batches, tail) for
exports. A route asks the registry for the request's renderer; an unknown `format` is the
same `invalid_parameter` problem on every route. Cell-level rules (CSV formulas, BOM,
booleans) stay in gateway/formats.py.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import orjson
from starlette.requests import Request

from catalog.hosted import HostedDataset
from gateway.formats import CsvWriter, escapes_formulas, jsonl_lines
from kernel.problems import invalid_parameter

Rows = Sequence[Sequence[Any]]


@dataclass(frozen=True, slots=True)
class Frame:
    """What every writer of one answer needs: the dataset version, the fields sent and
    the transform of each, and the request's CSV option."""

    hosted: HostedDataset
    names: Sequence[str]
    transforms: Sequence[str]
    escape_formulas: bool = True

    def fields(self) -> list[dict[str, str]]:
        return [
            {"name": n, "transform": t} for n, t in zip(self.names, self.transforms, strict=True)
        ]


class RowStream(ABC):
    """An export's body: `head()`, then `rows()` per batch, then `tail()`."""

    def head(self) -> bytes:
        return b""

    @abstractmethod
    def rows(self, rows: Rows) -> bytes: ...

    def tail(self) -> bytes:
        return b""


class Renderer(ABC):
    name: ClassVar[str]
    media_type: ClassVar[str]
    extension: ClassVar[str]
    accept: ClassVar[tuple[str, ...]] = ()  # Accept media types that choose this format

    @abstractmethod
    def page(self, frame: Frame, rows: Rows, next_cursor: str | None) -> bytes: ...

    @abstractmethod
    def one(self, frame: Frame, row: Sequence[Any]) -> bytes: ...

    @abstractmethod
    def stream(self, frame: Frame) -> RowStream: ...

    def attachment(self, stem: str) -> str:
        return f'attachment; filename="{stem}.{self.extension}"'


class JsonRenderer(Renderer):
    name = "json"
    media_type = "application/json"
    extension = "json"

    def page(self, frame: Frame, rows: Rows, next_cursor: str | None) -> bytes:
        names = frame.names
        return orjson.dumps(
            {
                "dataset": frame.hosted.id,
                "version": frame.hosted.version,
                "fields": frame.fields(),
                "data": [dict(zip(names, row, strict=True)) for row in rows],
                "next_cursor": next_cursor,
            }
        )

    def one(self, frame: Frame, row: Sequence[Any]) -> bytes:
        return orjson.dumps(
            {
                "dataset": frame.hosted.id,
                "version": frame.hosted.version,
                "fields": frame.fields(),
                "data": dict(zip(frame.names, row, strict=True)),
            }
        )

    def stream(self, frame: Frame) -> RowStream:
        return _JsonStream(frame)


class _JsonStream(RowStream):
    """The records page's object without `next_cursor`, its `data` array written batch by
    batch."""

    def __init__(self, frame: Frame) -> None:
        self.frame = frame
        self.first = True

    def head(self) -> bytes:
        hosted = self.frame.hosted
        opening = {"dataset": hosted.id, "version": hosted.version, "fields": self.frame.fields()}
        return orjson.dumps(opening)[:-1] + b',"data":['

    def rows(self, rows: Rows) -> bytes:
        if not rows:
            return b""
        names, dumps = self.frame.names, orjson.dumps
        body = b",".join(dumps(dict(zip(names, row, strict=True))) for row in rows)
        if self.first:
            self.first = False
            return body
        return b"," + body

    def tail(self) -> bytes:
        return b"]}"


class CsvRenderer(Renderer):
    name = "csv"
    media_type = "text/csv; charset=utf-8"
    extension = "csv"
    accept = ("text/csv",)

    def page(self, frame: Frame, rows: Rows, next_cursor: str | None) -> bytes:
        writer = _writer(frame)
        return (writer.header() + writer.rows(rows)).encode()

    def one(self, frame: Frame, row: Sequence[Any]) -> bytes:
        return self.page(frame, [row], None)

    def stream(self, frame: Frame) -> RowStream:
        return _CsvStream(_writer(frame))


def _writer(frame: Frame) -> CsvWriter:
    return CsvWriter(
        frame.hosted, frame.names, frame.transforms, escape_formulas=frame.escape_formulas
    )


class _CsvStream(RowStream):
    def __init__(self, writer: CsvWriter) -> None:
        self.writer = writer

    def head(self) -> bytes:
        return self.writer.header().encode()

    def rows(self, rows: Rows) -> bytes:
        return self.writer.rows(rows).encode()


class JsonLinesRenderer(Renderer):
    name = "jsonl"
    media_type = "application/jsonl; charset=utf-8"
    extension = "jsonl"
    accept = ("application/jsonl", "application/x-ndjson")

    def page(self, frame: Frame, rows: Rows, next_cursor: str | None) -> bytes:
        return jsonl_lines(frame.names, rows)

    def one(self, frame: Frame, row: Sequence[Any]) -> bytes:
        return jsonl_lines(frame.names, [row])

    def stream(self, frame: Frame) -> RowStream:
        return _JsonLinesStream(frame.names)


class _JsonLinesStream(RowStream):
    def __init__(self, names: Sequence[str]) -> None:
        self.names = names

    def rows(self, rows: Rows) -> bytes:
        return jsonl_lines(self.names, rows)


class Renderers:
    """The formats every data route answers in, in registration order (the order the
    Accept header is matched in and the problem lists them in)."""

    def __init__(self) -> None:
        self._by_name: dict[str, Renderer] = {}
        self._accept: list[tuple[str, Renderer]] = []

    def register(self, renderer: Renderer) -> Renderer:
        if renderer.name in self._by_name:
            raise ValueError(f"format {renderer.name} is registered already")
        self._by_name[renderer.name] = renderer
        self._accept += [(media, renderer) for media in renderer.accept]
        return renderer

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self._by_name)

    def __iter__(self) -> Iterator[Renderer]:
        return iter(self._by_name.values())

    def choose(self, request: Request, *, default: str) -> Renderer:
        """The renderer `format=` names, else the first whose media type the Accept header
        names, else `default`; an unknown `format` is 400 `invalid_parameter`."""
        fmt = request.query_params.get("format")
        if fmt is None:
            accept = request.headers.get("accept", "")
            for media, renderer in self._accept:
                if media in accept:
                    return renderer
            return self._by_name[default]
        renderer = self._by_name.get(fmt)
        if renderer is None:
            raise invalid_parameter("format", f"format 只能是 {' | '.join(self._by_name)}")
        return renderer


@dataclass(frozen=True, slots=True)
class Rendering:
    """A request's renderer and its options, parsed once before any row is read."""

    renderer: Renderer
    escape_formulas: bool

    def frame(
        self, hosted: HostedDataset, names: Sequence[str], transforms: Sequence[str]
    ) -> Frame:
        return Frame(hosted, names, transforms, self.escape_formulas)


RENDERERS = Renderers()
for _renderer in (JsonRenderer(), CsvRenderer(), JsonLinesRenderer()):
    RENDERERS.register(_renderer)


def rendering(request: Request, *, default: str) -> Rendering:
    """This request's format (`format=`, Accept, or `default`) and `csv_formulas`."""
    renderer = RENDERERS.choose(request, default=default)
    return Rendering(renderer, escapes_formulas(request))
