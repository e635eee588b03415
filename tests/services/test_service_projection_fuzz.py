"""Fuzzing the projection (issue 18's bar): random declarations and random answers — wrong
types, missing paths, huge arrays, deep nesting, bytes that are not JSON — never raise
anything but `ProjectionError`, never put an undeclared member out, and never let a level-3/4
leaf out without its transform (a sentinel transform proves it)."""

from __future__ import annotations

import json
from typing import Any

import orjson
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from services.paths import (
    CLEAR,
    LEAF_TYPES,
    Node,
    PathError,
    ProjectionError,
    ProjectionLimits,
    Tree,
    canonical,
    compile_paths,
)

NAMES = ["a", "b", "名", "x y"]
KEYS = [*NAMES, "secret", "c"]
LIMITS = ProjectionLimits(max_answer_bytes=1 << 20, max_array_items=30, max_total_items=120)
SENSITIVE = "\x00transformed:"  # no input text starts so (the alphabet below has no NUL)


@st.composite
def declarations(draw: st.DrawFn) -> tuple[Tree, dict[str, int]]:
    """A tree of 1–8 paths that agree with each other, and a level per path."""
    segment = st.one_of(st.sampled_from(NAMES), st.none())
    paths = draw(
        st.lists(
            st.tuples(
                st.lists(segment, min_size=1, max_size=5),
                st.sampled_from(sorted(LEAF_TYPES)),
                st.sampled_from([1, 2, 3, 4, 4]),
            ),
            min_size=1,
            max_size=8,
        )
    )
    declared: list[tuple[str, str]] = []
    levels: dict[str, int] = {}
    for segments, leaf_type, level in paths:
        text = canonical(segments)
        try:
            compile_paths([*declared, (text, leaf_type)])
        except PathError:
            continue  # conflicts with an earlier path: leave it out
        declared.append((text, leaf_type))
        levels[text] = level
    if not declared:
        declared, levels = [("$.a", "string")], {"$.a": 3}
    if max(levels.values()) < 3:  # a sensitive leaf in every case
        levels[declared[-1][0]] = 4
    return compile_paths(declared), levels


scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(st.characters(blacklist_characters="\x00"), max_size=12),
    st.sampled_from(["1990-05-17", "2026-12-04T01:00:00Z", "1990-02-30", "张三"]),
)
documents = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=12),
        st.dictionaries(st.sampled_from(KEYS), children, max_size=6),
    ),
    max_leaves=60,
)


@st.composite
def deep(draw: st.DrawFn) -> Any:
    """An answer nested far past any declared path, down one of the declared names."""
    value = draw(documents)
    for _ in range(draw(st.integers(20, 400))):
        value = [value] if draw(st.booleans()) else {draw(st.sampled_from(NAMES)): value}
    return value


@st.composite
def huge(draw: st.DrawFn) -> Any:
    item = draw(documents)
    return {draw(st.sampled_from(NAMES)): [item] * draw(st.integers(0, 200))}


def weighted(*choices: tuple[int, st.SearchStrategy[Any]]) -> st.SearchStrategy[Any]:
    """One of the strategies, each drawn `weight` times in `sum(weights)`."""
    table = [strategy for weight, strategy in choices for _ in range(weight)]
    return st.sampled_from(table).flatmap(lambda strategy: strategy)


def shaped(node: Node, *, top: bool = False) -> st.SearchStrategy[Any]:
    """Answers in the shape `node` declares, mostly, with wrong kinds, nulls and undeclared
    members mixed in at every level, so that the declared leaves are actually reached."""
    if node.leaf is not None:
        right = {
            "string": st.text(st.characters(blacklist_characters="\x00"), max_size=8),
            "integer": st.integers(),
            "number": st.one_of(st.integers(), st.floats(allow_nan=False, allow_infinity=False)),
            "boolean": st.booleans(),
            "date": st.sampled_from(
                ["1990-05-17", "2026-02-30", "x", "2026-W01-1", "２０２６-01-01"]
            ),
            "datetime": st.sampled_from(["2026-12-04T01:00:00+08:00", "2026-12-04", "later"]),
        }[node.type or ""]
        return weighted((4, right), (1, scalars), (1, documents))
    if node.members is not None:
        members = {k: shaped(c) for k, c in node.members.items()}
        right = st.fixed_dictionaries({}, optional={**members, "secret": documents, "c": documents})
        return st.one_of(right, right, right, documents)
    assert node.item is not None
    item = shaped(node.item)
    return st.one_of(
        st.lists(item, max_size=8), st.lists(item, min_size=25, max_size=40), documents
    )


answers = st.one_of(documents, deep(), huge())


@st.composite
def declared_and_answer(draw: st.DrawFn) -> tuple[Tree, dict[str, int], Any]:
    tree, levels = draw(declarations())
    answer = draw(weighted((3, shaped(tree.root, top=True)), (1, answers)))
    return tree, levels, answer


def sentinel(path: str):
    return lambda v: SENSITIVE + path


def transforms_for(tree: Tree, levels: dict[str, int]) -> dict[str, Any]:
    return {p: sentinel(p) if levels[p] >= 3 else CLEAR for p in tree.paths}


TYPE_OK = {
    "string": lambda v: type(v) is str,
    "integer": lambda v: type(v) is int,
    "number": lambda v: type(v) in (int, float),
    "boolean": lambda v: type(v) is bool,
    "date": lambda v: type(v) is str,
    "datetime": lambda v: type(v) is str,
}


def check(node: Node, out: Any, levels: dict[str, int]) -> None:
    """`out` holds only what `node` declares, and every sensitive leaf is transformed."""
    if out is None:
        return
    if node.leaf is not None:
        if levels[node.leaf] >= 3:
            assert out == SENSITIVE + node.leaf
        else:
            assert node.type is not None and TYPE_OK[node.type](out)
            assert not (type(out) is str and out.startswith(SENSITIVE))
        return
    if node.members is not None:
        assert type(out) is dict
        assert set(out) <= set(node.members), set(out) - set(node.members)
        for key, value in out.items():
            check(node.members[key], value, levels)
        return
    assert type(out) is list and node.item is not None
    for value in out:
        check(node.item, value, levels)


def _transformed(out: Any) -> bool:
    if type(out) is str:
        return out.startswith(SENSITIVE)
    values = out.values() if type(out) is dict else out if type(out) is list else ()
    return any(_transformed(v) for v in values)


def reference(node: Node, value: Any, budget: list[int]) -> Any:
    """The rules of services/paths.py written the plain way, as the oracle."""
    if value is None:
        return None
    if node.leaf is not None:
        ok = {
            "string": type(value) is str,
            "integer": type(value) is int and -(2**63) <= value < 2**64,
            "number": (type(value) is int and -(2**63) <= value < 2**64) or type(value) is float,
            "boolean": type(value) is bool,
            "date": type(value) is str and _valid("date", value),
            "datetime": type(value) is str and _valid("datetime", value),
        }[node.type or ""]
        return value if ok else None
    if node.members is not None:
        if type(value) is not dict:
            return None
        return {k: reference(c, value[k], budget) for k, c in node.members.items() if k in value}
    if type(value) is not list:
        return None
    if len(value) > LIMITS.max_array_items:
        raise ProjectionError("array")
    budget[0] -= len(value)
    if budget[0] < 0:
        raise ProjectionError("total")
    assert node.item is not None
    return [reference(node.item, x, budget) for x in value]


def _valid(kind: str, text: str) -> bool:
    import re
    from datetime import date, datetime

    if not re.match(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", text, re.ASCII):
        return False
    try:
        if kind == "date":
            return len(text) == 10 and bool(date.fromisoformat(text))
        return len(text) <= 40 and bool(datetime.fromisoformat(text))
    except ValueError:
        return False


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(declared_and_answer())
def test_projection_never_leaks(case: tuple[Tree, dict[str, int], Any]):
    tree, levels, answer = case
    bound = tree.bind(transforms_for(tree, levels), LIMITS)
    clear = tree.bind({p: CLEAR for p in tree.paths}, LIMITS)
    root_ok = type(answer) is (dict if tree.root.kind == "object" else list)
    try:
        out = bound(answer)
    except ProjectionError as exc:
        event(f"refused: {exc}"[:40])
        # Refused only for the top level or a bound, and the oracle agrees.
        if root_ok:
            try:
                reference(tree.root, answer, [LIMITS.max_total_items])
            except ProjectionError:
                return
            raise AssertionError(f"refused, the oracle did not: {exc}") from None
        return
    assert root_ok
    check(tree.root, out, levels)
    # With every leaf sensitive: each one out is null or went through its transform.
    every = tree.bind({p: sentinel(p) for p in tree.paths}, LIMITS)(answer)
    check(tree.root, every, dict.fromkeys(tree.paths, 4))
    if _transformed(out):
        event("a sensitive leaf went out, transformed")
    assert clear(answer) == reference(tree.root, answer, [LIMITS.max_total_items])
    orjson.dumps(out)  # always serializable
    try:
        body = orjson.dumps(answer)
    except TypeError:  # an integer past 64 bits: no upstream body can carry it
        return
    # Through the bytes as well: the same answer parsed back projects the same.
    assert bound.answer(body) == out


@settings(max_examples=200, deadline=None)
@given(
    declarations(),
    st.one_of(
        st.binary(max_size=64),
        st.builds(lambda d, cut: json.dumps(d).encode()[:cut], documents, st.integers(0, 40)),
        st.integers(1, 3000).map(lambda n: b"[" * n + b"]" * n),
        st.integers(1, 3000).map(lambda n: b'{"a":' * n + b"1" + b"}" * n),
        st.just(b"<html><body>Bad Gateway</body></html>"),
    ),
)
def test_any_bytes_are_json_or_a_projection_error(
    declared: tuple[Tree, dict[str, int]], body: bytes
):
    tree, levels = declared
    bound = tree.bind(transforms_for(tree, levels), LIMITS)
    try:
        out = bound.answer(body)
    except ProjectionError:
        return
    check(tree.root, out, levels)
