"""The native chain walk (audit/_chain.c) is held to the pure-Python fast path of
`ChainWalk.feed_lines`: on PostgreSQL, for random logs (strings that need escaping, nulls
everywhere, checkpoints at many sizes), untouched and tampered, walking with the extension
and without it gives the same report, the same chain state and the same Merkle root; and on
lines corrupted byte by byte, the two walks still end the same way.

The extension is optional: these tests skip when it is not built, and fail instead with
OPENGATE_REQUIRE_NATIVE=1 (as `.ci/run` sets), so CI cannot go green on the fallback alone.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

import audit.verify as verify_module
from audit import _native as audit_native
from audit.canonical import EVENT_KEYS, GENESIS
from audit.checkpoints import all_checkpoints, checkpoint_now
from audit.guards import VERBS, create_guard, drop_guard
from audit.merkle import Frontier
from audit.signing import Signer
from audit.store import EventLines
from audit.verify import ChainWalk, verify
from audit.writer import append
from tests.audit.test_canonical import naive_root
from tests.native import native_module


@pytest.fixture(scope="module")
def native() -> Any:
    module = native_module("audit._chain")
    assert verify_module._native_walk() is module  # the verifier found it and its template agrees
    return module


# --- random logs -------------------------------------------------------------------------

# Pieces of text: plain, the characters COPY escapes or the fast path must not vouch for,
# the null marker's spelling, a %-format, non-ASCII and astral characters.
PIECES = ["a", "Z", "0", " ", "-", '"', "\\", "\t", "\n", "\r", "\x01", "\x1f", "\x7f"]
PIECES += ["\\N", "N", "%s", "é", "市南区", "😀", "\U0010fffd", "\ue000", "null"]


def _text(rng: random.Random, most: int = 8) -> str:
    return "".join(rng.choice(PIECES) for _ in range(rng.randint(0, most)))


def _maybe(rng: random.Random, value: Any, nulls: float) -> Any:
    return None if rng.random() < nulls else value


def _json(rng: random.Random, depth: int = 0) -> Any:
    kind = rng.randrange(6 if depth < 2 else 3)
    if kind == 0:
        return _text(rng, 4)
    if kind == 1:
        return rng.choice([0, -1, 7, 2**31, 2**53 - 1, None, True, False])
    if kind == 2:
        return None
    if kind in (3, 4):
        return {_text(rng, 3): _json(rng, depth + 1) for _ in range(rng.randint(0, 3))}
    return [_json(rng, depth + 1) for _ in range(rng.randint(0, 3))]


def random_event(rng: random.Random) -> dict[str, Any]:
    """An event as the gateway hands it to the writer; one in three mostly nulls, one in
    three plain ASCII (the common case the fast path takes)."""
    style = rng.randrange(3)
    nulls = 0.8 if style == 0 else 0.1
    plain = style == 2

    def text(most: int = 8) -> str:
        return f"plain-{rng.randrange(10**6)}" if plain else _text(rng, most)

    event = {k: None for k in EVENT_KEYS if k not in ("seq", "ts")}
    event |= {
        "request_id": _maybe(rng, text(), nulls),
        "actor": _maybe(rng, text(), nulls),
        "client_id": _maybe(rng, text(), nulls),
        "ip": _maybe(rng, text(), nulls),
        "action": text() or "data.records",
        "resource": _maybe(rng, text(), nulls),
        "fields": _maybe(rng, [{"name": text(4), "transform": "clear"}], nulls),
        "row_count": _maybe(rng, rng.randrange(0, 2**31), nulls),
        "purpose": _maybe(rng, text(20), nulls),
        "grant_id": _maybe(rng, rng.randrange(1, 2**31), nulls),
        "grant_version": _maybe(rng, rng.randrange(1, 100), nulls),
        "outcome": text(3)[:16] or "allowed",
        "status": _maybe(rng, rng.choice([200, 401, 403, 503]), nulls),
        "detail": _maybe(rng, {"n": rng.randrange(100)} if plain else _json(rng), nulls),
    }
    return event


def build_random_log(engine: Engine, signer: Signer, rng: random.Random, events: int) -> None:
    """`events` events appended in chunks of random sizes, a checkpoint after most chunks
    (so at many tree sizes: 1, powers of two, odd sizes, ...)."""
    written = 0
    while written < events:
        chunk = min(events - written, rng.choice([1, 1, 2, 3, 7, 16, 31, 64]))
        append(engine, [random_event(rng) for _ in range(chunk)])
        written += chunk
        if rng.random() < 0.6:
            checkpoint_now(engine, signer, kind="manual")


# --- the two walks ------------------------------------------------------------------------


def walk(
    engine: Engine,
    signer: Signer,
    *,
    native: bool,
    lines: list[bytes] | None = None,
    batch: int | None = None,
) -> dict[str, Any]:
    """A ChainWalk over the COPY lines with or without the extension: everything it ends
    with (report, chain state, Merkle frontier and root), or the exception it raised."""
    with pytest.MonkeyPatch.context() as patch:
        if not native:
            patch.setattr(audit_native, "chain", None)
        if batch is not None:
            patch.setattr(verify_module, "_BATCH", batch)
        chain = ChainWalk(signer.public_key, all_checkpoints(engine))
        try:
            chain.feed_lines(EventLines(engine) if lines is None else Lines(lines))
        except Exception as exc:
            return {"raised": type(exc).__name__}
        report = chain.finish()
    return {
        "report": report.as_dict(),
        "problems": report.problems,
        "expected": chain.expected,
        "prev": chain.prev,
        "previous_row": chain._previous_row,
        "size": chain.frontier.size,
        "nodes": list(chain.frontier.nodes),
        "root": chain.frontier.root(),
    }


def same_both_ways(engine: Engine, signer: Signer, **kwargs: Any) -> dict[str, Any]:
    python = walk(engine, signer, native=False, **kwargs)
    native = walk(engine, signer, native=True, **kwargs)
    assert native == python
    return native


def stored_hashes(engine: Engine) -> list[str]:
    with engine.connect() as conn:
        return list(conn.execute(sa.text("SELECT hash FROM audit_events ORDER BY seq")).scalars())


def attack(engine: Engine, statement: str, **params: Any) -> None:
    """One statement with the append-only guards dropped (the attacker has DDL rights)."""
    with engine.begin() as conn:
        dialect = conn.dialect.name
        for verb in VERBS:
            conn.exec_driver_sql(drop_guard(dialect, verb))
        conn.execute(sa.text(statement), params)
        for verb in VERBS:
            conn.exec_driver_sql(create_guard(dialect, verb))


# --- on PostgreSQL ------------------------------------------------------------------------


@pytest.mark.postgres
@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_random_logs_walk_the_same_natively(
    native: Any, pg_engine: Engine, tmp_path: Path, seed: int
) -> None:
    rng = random.Random(seed)
    signer = Signer.generate()
    build_random_log(pg_engine, signer, rng, 200 + 37 * seed)

    result = same_both_ways(pg_engine, signer)
    report = result["report"]
    assert report["ok"], report
    hashes = stored_hashes(pg_engine)
    assert report["events"] == report["verified_through"] == len(hashes)
    assert report["checkpoints"] == len(all_checkpoints(pg_engine))
    leaves = [hashlib.sha256(b"\x00" + bytes.fromhex(h)).digest() for h in hashes]
    assert result["root"] == naive_root(leaves)
    # Batch edges anywhere: a batch of one line, of a few, of more than the log.
    for batch in (1, 3, 50, 100_000):
        assert walk(pg_engine, signer, native=True, batch=batch) == result
    assert verify(pg_engine, signer.public_key).as_dict() == report


COLUMN_EDITS = [
    ("purpose", lambda rng: _text(rng, 6)),
    ("actor", lambda rng: "client:app-2"),
    ("request_id", lambda rng: None),
    ("row_count", lambda rng: rng.randrange(1000)),
    ("status", lambda rng: None),
    ("detail", lambda rng: '{"n": 1}'),
    ("fields", lambda rng: "null"),
    ("hash", lambda rng: "0" * 64),
    ("prev_hash", lambda rng: "f" * 64),
    ("ts", lambda rng: "2020-01-01T00:00:00.000000Z"),
]


@pytest.mark.postgres
@pytest.mark.parametrize("seed", [5, 6, 7])
def test_tampered_random_logs_are_reported_the_same(
    native: Any, pg_engine: Engine, tmp_path: Path, seed: int
) -> None:
    rng = random.Random(seed)
    signer = Signer.generate()
    build_random_log(pg_engine, signer, rng, 150)
    total = len(stored_hashes(pg_engine))

    # Rows rewritten with their own values move to the end of the table: both walks read
    # on in key order and find nothing wrong.
    attack(pg_engine, "UPDATE audit_events SET seq = seq WHERE seq IN (2, 40)")
    assert same_both_ways(pg_engine, signer)["report"]["ok"]

    for _ in range(3):
        column, value = rng.choice(COLUMN_EDITS)
        seq = rng.randrange(1, total + 1)
        with pg_engine.connect() as conn:
            before = conn.execute(
                sa.text(f"SELECT CAST({column} AS TEXT) FROM audit_events WHERE seq = :s"),
                {"s": seq},
            ).scalar_one()
        new = value(rng)
        if new == before:
            continue
        cast = "CAST(:v AS JSON)" if column in ("fields", "detail") else ":v"
        attack(pg_engine, f"UPDATE audit_events SET {column} = {cast} WHERE seq = :s", v=new, s=seq)
        report = same_both_ways(pg_engine, signer)["report"]
        assert not report["ok"] and report["first_bad_seq"] is not None
        assert report["first_bad_seq"] <= seq, (column, seq, report)
        attack(
            pg_engine,
            f"UPDATE audit_events SET {column} = "
            f"{'CAST(:v AS JSON)' if column in ('fields', 'detail') else ':v'} WHERE seq = :s",
            v=before,
            s=seq,
        )
        assert same_both_ways(pg_engine, signer)["report"]["ok"]

    # A deleted row, then a cut tail below the last checkpoint.
    attack(pg_engine, "DELETE FROM audit_events WHERE seq = :s", s=total // 2)
    assert same_both_ways(pg_engine, signer)["report"]["first_bad_seq"] == total // 2
    attack(pg_engine, "DELETE FROM audit_events WHERE seq > :s", s=total // 3)
    assert not same_both_ways(pg_engine, signer)["report"]["ok"]


# --- lines corrupted byte by byte (no database needed once the lines are read) -----------


class Lines:
    """An EventLines stand-in over given COPY lines."""

    canonical_types = True

    def __init__(self, lines: list[bytes]) -> None:
        self.lines = lines
        self.ordered = False

    def __iter__(self) -> Iterator[bytes]:
        yield from self.lines

    def ordered_from(self, after: int) -> Iterator[bytes]:
        self.ordered = True

        def seq(line: bytes) -> int:
            try:
                return int(line.split(b"\t")[0])
            except ValueError:
                return -1

        yield from sorted((x for x in self.lines if seq(x) > after), key=seq)


BYTES = [b'"', b"\\", b"\t", b"\n", b"\x01", b"N", b"\\N", b"x", b"0", b"9", b"\xe5", b""]


def corrupt(rng: random.Random, lines: list[bytes]) -> list[bytes]:
    out = list(lines)
    at = rng.randrange(len(out))
    line = out[at]
    kind = rng.randrange(6)
    if kind == 0:  # one byte changed, dropped or added
        i = rng.randrange(len(line))
        out[at] = line[:i] + rng.choice(BYTES) + line[i + rng.randrange(2) :]
    elif kind == 1:  # a field replaced
        fields = line[:-1].split(b"\t")
        fields[rng.randrange(len(fields))] = rng.choice([b"\\N", b"", b"1", b'"x"', b"null"])
        out[at] = b"\t".join(fields) + b"\n"
    elif kind == 2:  # two lines swapped
        other = rng.randrange(len(out))
        out[at], out[other] = out[other], out[at]
    elif kind == 3 and rng.random() < 0.5:  # a line repeated
        out.insert(at, line)
    elif kind == 3:  # a line dropped
        out.pop(at)
    elif kind == 4:  # the newline lost
        out[at] = line[:-1]
    else:  # a seq spelled differently
        seq, rest = line.split(b"\t", 1)
        out[at] = rng.choice([b"0", b"+", b" "]) + seq + b"\t" + rest
    return out


@pytest.mark.postgres
def test_corrupted_lines_end_the_same_natively(
    native: Any, pg_engine: Engine, tmp_path: Path
) -> None:
    rng = random.Random(8)
    signer = Signer.generate()
    build_random_log(pg_engine, signer, rng, 120)
    lines = list(EventLines(pg_engine).ordered_from(0))
    assert walk(pg_engine, signer, native=True, lines=lines)["report"]["ok"]
    for _ in range(300):
        broken = corrupt(rng, lines)
        for _ in range(rng.randrange(3)):
            broken = corrupt(rng, broken)
        for batch in (1, 7, 4096):
            same_both_ways(pg_engine, signer, lines=broken, batch=batch)


# --- the walk itself ------------------------------------------------------------------------


@pytest.mark.parametrize("portable", [False, True])
def test_sha256_matches_hashlib(native: Any, portable: bool) -> None:
    rng = random.Random(9)
    for n in [*range(0, 200), 447, 1000, 4096]:
        data = rng.randbytes(n)
        assert native.sha256(data, portable=portable) == hashlib.sha256(data).digest()


def test_frontier_is_rfc_9162(native: Any) -> None:
    """A chain of one-field lines the walk vouches for: its frontier after every size is
    the one Frontier.append_digest builds."""
    template = verify_module._TEMPLATE
    prev, reference, lines = GENESIS.encode(), Frontier(), []
    values = [b"a", b"actor", b"c", b"null", b"null", b"null", b"null", b"10.0.0.1", b"ok"]
    values += [b"p", b"r", b"res", b"null", b"", b"null", b"2026-01-01T00:00:00.000000Z"]
    for seq in range(1, 70):
        picked = list(values)
        picked[13] = str(seq).encode()
        digest = hashlib.sha256(prev + template % tuple(picked)).digest()
        columns: list[bytes] = [b""] * 18
        for value, column in zip(picked, verify_module._PICK, strict=True):
            columns[column] = value
        columns[16], columns[17] = prev, digest.hex().encode()
        lines.append(b"\t".join(columns) + b"\n")
        reference.append_digest(digest)
        prev = digest.hex().encode()
        nodes: list[bytes] = []
        end, last, expected, size = native.walk(lines, 0, GENESIS.encode(), 1, nodes, 0, -1)
        assert (end, last, expected, size) == (seq, prev, seq + 1, seq)
        assert nodes == reference.nodes
    # Stops after the checkpoint's seq, and goes on from where it stopped.
    nodes = []
    end, last, expected, size = native.walk(lines, 0, GENESIS.encode(), 1, nodes, 0, 33)
    assert (end, expected, size) == (33, 34, 33)
    end, last, expected, size = native.walk(lines, end, last, expected, nodes, size, -1)
    assert (end, last, expected, size) == (69, prev, 70, 69)
    assert nodes == reference.nodes
    # A frontier that does not match its size is refused, not walked on.
    with pytest.raises(ValueError, match="frontier"):
        native.walk(lines, 0, GENESIS.encode(), 1, [], 1, -1)
