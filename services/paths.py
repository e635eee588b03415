"""The response path language of a service (docs/contract-services.md) and the projection of
an upstream answer onto the declared paths.

A path names one scalar member of the upstream's JSON: `$.data.person_name`,
`$.data.items[*].owner.name`, `$['企业名称']`. The declared paths of a service are compiled
once into a tree; `Tree.bind(transforms)` turns it into a `Projector`, a chain of closures
that builds a new JSON value holding only the declared members, each leaf passed through the
transform given for its path (the compiled masker of the field under the caller's grant).

Rules (pinned by tests/services/test_paths.py and the fuzz test):

- An undeclared member is never copied: output objects are built from the declared keys.
- A declared member missing from the answer is missing from the output.
- A value of the wrong kind is never passed through: an object where a scalar or an array is
  declared, a scalar where an object is declared, a non-list where `[*]` is declared, a
  scalar of another type than the declared one (`"12"` for an integer, `1.5` for an
  integer, `true` for a number, an integer past 64 bits) all become `null` at that member.
  `null` stays `null` and is not given to the transform (contract §3: null stays null for
  every transform).
- Work is bounded: the projector only walks declared members, so its depth is the depth of
  the tree (at most `PathLimits.max_segments`); one array may hold at most
  `ProjectionLimits.max_array_items` elements and all arrays of one answer together
  `max_total_items`. Past a bound the projection is refused with `ProjectionError`, never
  truncated in silence.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

import orjson

from policies.compiled import compile_transform

Transform = Callable[[Any], Any]


class PathError(ValueError):
    """A declared path that cannot be compiled; the message is Chinese and names the path."""


class ProjectionError(ValueError):
    """An upstream answer the projection refuses (not JSON, too large, shaped otherwise than
    declared at the top). The message is Chinese and carries no value of the answer."""


@dataclass(frozen=True, slots=True)
class PathLimits:
    max_segments: int = 16  # members and [*] after `$`
    max_path_chars: int = 512
    max_paths: int = 256


@dataclass(frozen=True, slots=True)
class ProjectionLimits:
    max_answer_bytes: int = 4 * 1024 * 1024
    max_array_items: int = 10_000
    max_total_items: int = 100_000


DEFAULT_PATH_LIMITS = PathLimits()
DEFAULT_PROJECTION_LIMITS = ProjectionLimits()

# The scalar types of contract §2, as the leaves of a response are declared.
LEAF_TYPES = frozenset({"string", "integer", "number", "boolean", "date", "datetime"})

EACH = "[*]"
# A member written after a dot: a letter or `_` (any script, so `$.企业名称` reads as
# written), then letters, digits, `_` and `-`. Anything else goes in brackets: `$['a b']`.
_DOT_NAME = re.compile(r"[^\W\d][\w-]*")
_MAX_NAME_CHARS = 128


@dataclass(frozen=True, slots=True)
class ParsedPath:
    text: str  # canonical form
    segments: tuple[str | None, ...]  # a member name, or None for [*]


def _shown(text: str) -> str:
    return text if len(text) <= 60 else text[:60] + "…"


def _member_text(name: str) -> str:
    if _DOT_NAME.fullmatch(name):
        return "." + name
    return "['" + name.replace("\\", "\\\\").replace("'", "\\'") + "']"


def canonical(segments: Iterable[str | None]) -> str:
    return "$" + "".join(EACH if s is None else _member_text(s) for s in segments)


def parse_path(text: object, limits: PathLimits = DEFAULT_PATH_LIMITS) -> ParsedPath:
    """Read one path; raise PathError with the reason."""
    if not isinstance(text, str):
        raise PathError("路径 path 必须是字符串，形如 $.data.name")
    if len(text) > limits.max_path_chars:
        raise PathError(f"路径 {_shown(text)} 超过 {limits.max_path_chars} 个字符的上限")
    if not text.startswith("$"):
        raise PathError(f"路径 {_shown(text)} 须以 $ 开头，形如 $.data.name")
    segments: list[str | None] = []
    i, n = 1, len(text)
    while i < n:
        if text[i] == ".":
            match = _DOT_NAME.match(text, i + 1)
            if match is None:
                raise PathError(
                    f"路径 {_shown(text)} 第 {i + 2} 个字符：点号后须为成员名（字母或下划线开头，"
                    "只含字母、数字、下划线和连字符）；其他成员名写作 ['名称']"
                )
            segments.append(match.group())
            i = match.end()
        elif text.startswith(EACH, i):
            segments.append(None)
            i += len(EACH)
        elif text.startswith("['", i) or text.startswith('["', i):
            name, i = _quoted(text, i + 1)
            segments.append(name)
        else:
            raise PathError(
                f"路径 {_shown(text)} 第 {i + 1} 个字符：应为 .成员名、['成员名'] 或 [*]"
            )
        if len(segments) > limits.max_segments:
            raise PathError(f"路径 {_shown(text)} 超过 {limits.max_segments} 段的上限")
    if not segments:
        raise PathError("路径不能只是 $：须指向应答中的一个成员，形如 $.data.name")
    for name in segments:
        if name is not None and not name:
            raise PathError(f"路径 {_shown(text)}：成员名不能为空")
        if name is not None and len(name) > _MAX_NAME_CHARS:
            raise PathError(f"路径 {_shown(text)}：成员名超过 {_MAX_NAME_CHARS} 个字符的上限")
    return ParsedPath(canonical(segments), tuple(segments))


def _quoted(text: str, i: int) -> tuple[str, int]:
    """The name quoted at `text[i]` and the index after its closing bracket."""
    quote, i, chars = text[i], i + 1, []
    while i < len(text):
        c = text[i]
        if c == "\\" and i + 1 < len(text) and text[i + 1] in (quote, "\\"):
            chars.append(text[i + 1])
            i += 2
        elif c == quote:
            if not text.startswith("]", i + 1):
                break
            return "".join(chars), i + 2
        else:
            chars.append(c)
            i += 1
    raise PathError(f"路径 {_shown(text)}：引号括起的成员名须以 {quote}] 结束")


# --- the tree ----------------------------------------------------------------------------


@dataclass(slots=True)
class Node:
    """One position of the answer: an object (`members`), an array (`item`) or a leaf."""

    members: dict[str, Node] | None = None
    item: Node | None = None
    leaf: str | None = None  # the canonical path of a leaf
    type: str | None = None
    paths: frozenset[str] = frozenset()  # every leaf at or below

    @property
    def kind(self) -> str:
        if self.leaf is not None:
            return "leaf"
        return "object" if self.members is not None else "array"


@dataclass(frozen=True, slots=True)
class Tree:
    root: Node
    types: Mapping[str, str]  # leaf path → declared type, in declaration order
    limits: PathLimits = field(default=DEFAULT_PATH_LIMITS)

    @property
    def paths(self) -> tuple[str, ...]:
        return tuple(self.types)

    def only(self, paths: Iterable[str]) -> Tree:
        """The tree of the declared paths among `paths` (those a grant shows), in declaration
        order; the others are then dropped from the answer like undeclared members."""
        keep = set(paths)
        unknown = keep - self.types.keys()
        if unknown:
            raise ValueError(f"not declared: {', '.join(sorted(unknown)[:5])}")
        return compile_paths(((p, t) for p, t in self.types.items() if p in keep), self.limits)

    def bind(
        self,
        transforms: Mapping[str, Transform],
        limits: ProjectionLimits = DEFAULT_PROJECTION_LIMITS,
    ) -> Projector:
        return Projector(self, transforms, limits)


_KIND_NAMES = {"leaf": "标量", "object": "对象", "array": "数组"}


def compile_paths(
    declared: Iterable[tuple[str, str]], limits: PathLimits = DEFAULT_PATH_LIMITS
) -> Tree:
    """The tree of `(path, type)` pairs; raise PathError for a bad path or type, a path
    declared twice, or two paths that disagree on what a member is (`$.a` a scalar and
    `$.a.b` below it; `$.a[*]` and `$.a.b`)."""
    root: Node | None = None
    types: dict[str, str] = {}
    first_at: dict[tuple[str | None, ...], str] = {}  # a position → the path that made it
    for text, leaf_type in declared:
        parsed = parse_path(text, limits)
        if leaf_type not in LEAF_TYPES:
            raise PathError(
                f"路径 {parsed.text}：type 的取值 {leaf_type!r} 无效，可选："
                + "、".join(sorted(LEAF_TYPES))
            )
        if parsed.text in types:
            raise PathError(f"路径 {parsed.text} 重复声明")
        if len(types) >= limits.max_paths:
            raise PathError(f"应答字段超过 {limits.max_paths} 个的上限")
        types[parsed.text] = leaf_type
        root = _insert(root, parsed, leaf_type, first_at)
    if root is None:
        raise PathError("至少需要声明一个应答字段")
    _fill_paths(root)
    return Tree(root, types, limits)


def _want(segment: str | None) -> str:
    return "array" if segment is None else "object"


def _insert(
    root: Node | None,
    parsed: ParsedPath,
    leaf_type: str,
    first_at: dict[tuple[str | None, ...], str],
) -> Node:
    segs = parsed.segments
    wanted = [_want(s) for s in segs] + ["leaf"]
    if root is None:
        root = _new(wanted[0], parsed.text, leaf_type)
    node = root
    for depth in range(len(segs) + 1):
        position = segs[:depth]
        if node.kind != wanted[depth]:
            other = first_at[position]
            raise PathError(
                f"路径 {parsed.text} 与 {other} 冲突：{canonical(position)} 不能既是"
                f"{_KIND_NAMES[node.kind]}又是{_KIND_NAMES[wanted[depth]]}"
            )
        first_at.setdefault(position, parsed.text)
        if depth == len(segs):
            break
        seg = segs[depth]
        nxt_kind = wanted[depth + 1]
        if seg is None:
            if node.item is None:
                node.item = _new(nxt_kind, parsed.text, leaf_type)
            node = node.item
        else:
            assert node.members is not None
            child = node.members.get(seg)
            if child is None:
                child = node.members[seg] = _new(nxt_kind, parsed.text, leaf_type)
            node = child
    return root


def _new(kind: str, path: str, leaf_type: str) -> Node:
    if kind == "leaf":
        return Node(leaf=path, type=leaf_type)
    if kind == "object":
        return Node(members={})
    return Node()  # an array; its item is set by the caller


def _fill_paths(node: Node) -> frozenset[str]:
    if node.leaf is not None:
        node.paths = frozenset({node.leaf})
    elif node.members is not None:
        node.paths = frozenset().union(*(_fill_paths(c) for c in node.members.values()))
    else:
        assert node.item is not None
        node.paths = _fill_paths(node.item)
    return node.paths


# --- projection --------------------------------------------------------------------------


# Python's fromisoformat also reads week dates (`2026-W01-1`) and other digits than ASCII's;
# a date is `YYYY-MM-DD` here, as in contract §2.
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def is_date_text(v: str) -> bool:
    """`YYYY-MM-DD`, a real date."""
    if not _DATE.fullmatch(v):
        return False
    try:
        date.fromisoformat(v)
    except ValueError:
        return False
    return True


def is_datetime_text(v: str) -> bool:
    """ISO 8601 date and time (or a date), as `datetime.fromisoformat` reads it, starting
    with a `YYYY-MM-DD` date, at most 40 characters."""
    if len(v) > 40 or not _DATE.match(v):
        return False
    try:
        datetime.fromisoformat(v)
    except ValueError:
        return False
    return True


# What `compile_transform("clear")` hands out: a leaf with it skips the call.
CLEAR: Transform = compile_transform("clear", key=None, pii="none")

# What an answer can hold and be written back: orjson reads and writes 64-bit integers only
# (a longer one it reads as a float), so a larger int from elsewhere is out of type.
_LO, _HI = -(2**63), 2**64 - 1

Step = Callable[[Any, list[int]], Any]
_INLINE: dict[str, type] = {"string": str, "boolean": bool}


def _leaf_step(leaf_type: str, fn: Transform) -> Step:
    # One closure per type, so a leaf costs one call, one type test and the transform.
    if fn is CLEAR:
        if leaf_type == "string":
            return lambda v, _b: v if type(v) is str else None
        if leaf_type == "integer":
            return lambda v, _b: v if type(v) is int and _LO <= v <= _HI else None
    if leaf_type == "string":
        return lambda v, _b: fn(v) if type(v) is str else None
    if leaf_type == "integer":
        return lambda v, _b: fn(v) if type(v) is int and _LO <= v <= _HI else None
    if leaf_type == "number":
        return lambda v, _b: (
            fn(v) if (type(v) is int and _LO <= v <= _HI) or type(v) is float else None
        )
    if leaf_type == "boolean":
        return lambda v, _b: fn(v) if type(v) is bool else None
    if leaf_type == "date":
        return lambda v, _b: fn(v) if type(v) is str and is_date_text(v) else None
    assert leaf_type == "datetime"
    return lambda v, _b: fn(v) if type(v) is str and is_datetime_text(v) else None


def _too_many(limit: int, what: str) -> ProjectionError:
    return ProjectionError(f"上游应答的{what}超过 {limit} 个元素的上限")


def _step(node: Node, transforms: Mapping[str, Transform], limits: ProjectionLimits) -> Step:
    if node.leaf is not None:
        assert node.type is not None
        return _leaf_step(node.type, transforms[node.leaf])
    if node.members is not None:
        # String and boolean leaves, the most common, are tested inline: `type(x) is kind`
        # and the transform (none when clear), without a call per leaf for the type test.
        inline: list[tuple[str, type, Transform | None]] = []
        members: list[tuple[str, Step]] = []
        for key, child in node.members.items():
            if child.leaf is not None and child.type in _INLINE:
                fn = transforms[child.leaf]
                inline.append((key, _INLINE[child.type], None if fn is CLEAR else fn))
            else:
                members.append((key, _step(child, transforms, limits)))
        simple, nested = tuple(inline), tuple(members)

        def obj(v: Any, budget: list[int]) -> Any:
            if type(v) is not dict:
                return None
            out = {}
            for key, kind, fn in simple:
                if key in v:
                    x = v[key]
                    if type(x) is not kind:
                        out[key] = None
                    else:
                        out[key] = x if fn is None else fn(x)
            for key, step in nested:
                if key in v:
                    out[key] = step(v[key], budget)
            return out

        return obj
    assert node.item is not None
    item = _step(node.item, transforms, limits)
    most = limits.max_array_items

    def arr(v: Any, budget: list[int]) -> Any:
        if type(v) is not list:
            return None
        n = len(v)
        if n > most:
            raise _too_many(most, "单个数组")
        budget[0] -= n
        if budget[0] < 0:
            raise _too_many(limits.max_total_items, "数组元素总数")
        return [item(x, budget) for x in v]

    return arr


class Projector:
    """A tree bound to one set of transforms: call it on a parsed answer."""

    __slots__ = ("_root_kind", "_step", "limits", "tree")

    def __init__(
        self,
        tree: Tree,
        transforms: Mapping[str, Transform],
        limits: ProjectionLimits = DEFAULT_PROJECTION_LIMITS,
    ) -> None:
        missing = [p for p in tree.types if p not in transforms]
        if missing:
            # A programming error, not an upstream's: a leaf without a transform would have
            # to pass its value through or guess, and neither is acceptable.
            raise ValueError(f"no transform for {', '.join(missing[:5])}")
        self.tree = tree
        self.limits = limits
        self._root_kind = tree.root.kind
        self._step = _step(tree.root, transforms, limits)

    def __call__(self, document: Any) -> Any:
        expected = dict if self._root_kind == "object" else list
        if type(document) is not expected:
            raise ProjectionError(
                f"上游应答的顶层应为 JSON {'对象' if expected is dict else '数组'}"
            )
        return self._step(document, [self.limits.max_total_items])

    def answer(self, body: bytes) -> Any:
        """Parse an upstream body and project it."""
        return self(parse_answer(body, self.limits))


def parse_answer(body: bytes, limits: ProjectionLimits = DEFAULT_PROJECTION_LIMITS) -> Any:
    """An upstream body as JSON, or ProjectionError: over the size limit, not UTF-8 JSON,
    nested past orjson's 1024 levels."""
    if len(body) > limits.max_answer_bytes:
        raise ProjectionError(f"上游应答超过 {limits.max_answer_bytes} 字节的上限")
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        raise ProjectionError("上游应答不是有效的 JSON") from None


def project(
    document: Any,
    tree: Tree,
    transforms: Mapping[str, Transform],
    limits: ProjectionLimits = DEFAULT_PROJECTION_LIMITS,
) -> Any:
    """A new JSON value of `document` holding only the declared members, each leaf passed
    through `transforms[path]`. Binding is the costly part: callers that project many
    answers under one set of transforms keep `tree.bind(transforms)` instead."""
    return Projector(tree, transforms, limits)(document)


def returned_paths(projected: Any, tree: Tree) -> tuple[str, ...]:
    """The declared paths that carry a non-null value somewhere in a projected answer, in
    declaration order: what an audit event names (never the values)."""
    found: set[str] = set()
    _present(tree.root, projected, found)
    return tuple(p for p in tree.types if p in found)


def _present(node: Node, value: Any, found: set[str]) -> None:
    if value is None or node.paths <= found:
        return
    if node.leaf is not None:
        found.add(node.leaf)
    elif node.members is not None:
        if type(value) is dict:
            for key, child in node.members.items():
                if key in value:
                    _present(child, value[key], found)
    elif type(value) is list:
        assert node.item is not None
        for x in value:
            _present(node.item, x, found)
            if node.item.paths <= found:
                break
