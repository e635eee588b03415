"""Tampering with the audit log, as someone with the database password and DDL rights:
every kind of edit is found, and the first bad seq is the one the edit touched — by
`verify()`, by `GET /api/v1/audit/verify` (an auditor) and by `opengate audit verify`.

The log: 50 events, a signed checkpoint at 25 and one at 50. Some events are stored the
ordinary way, some need escaping (quotes, backslashes, a newline, nulls), so both of the
PostgreSQL verifier's paths are exercised (audit/verify.py).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from audit.canonical import chain_hash
from audit.checkpoints import checkpoint_now
from audit.guards import VERBS, drop_guard
from audit.signing import Signer
from audit.store import COLUMNS, SELECT_COLUMNS, event_from_row
from audit.verify import verify
from audit.writer import append
from gateway.settings import Settings
from tests.audit.helpers import auditor, event, opengate
from tests.conftest import TestClient
from tests.keys import keys_of

ESCAPED = 5  # the event whose strings need escaping
FIELDS = [
    {"name": "person_name", "transform": "mask:name"},
    {"name": "district", "transform": "clear"},
]


def _event(i: int) -> dict[str, Any]:
    if i % 10 == 9:  # a refusal: mostly nulls
        return event(
            request_id=f"req-{i}", actor="anonymous", action="access.denied", outcome="denied",
            status=401,
        )  # fmt: skip
    return event(
        request_id=f"req-{i}",
        actor="client:app-1",
        client_id="app-1",
        ip="10.0.0.7",
        resource="datasets/social-insurance",
        fields=FIELDS,
        row_count=i,
        purpose='引号"和\\反斜杠\n换行\t制表' if i == ESCAPED else "个人贷款授信评估",
        grant_id=3,
        grant_version=1,
        status=200,
        detail={"format": "json", "filters": {"district__eq": "市南区"}, "n": i},
    )


def build_log(engine: Engine, signer: Signer) -> None:
    append(engine, [_event(i) for i in range(1, 26)])
    assert checkpoint_now(engine, signer, kind="manual").tree_size == 25  # type: ignore[union-attr]
    append(engine, [_event(i) for i in range(26, 51)])
    assert checkpoint_now(engine, signer, kind="manual").tree_size == 50  # type: ignore[union-attr]


def _rows(conn: Connection, *seqs: int) -> dict[int, dict[str, Any]]:
    rows = conn.execute(
        sa.text(f"SELECT {SELECT_COLUMNS} FROM audit_events WHERE seq IN :seqs").bindparams(
            sa.bindparam("seqs", expanding=True)
        ),
        {"seqs": list(seqs)},
    )
    return {int(r[0]): dict(zip(COLUMNS, r, strict=True)) for r in rows}


def _set(conn: Connection, seq: int, values: dict[str, Any]) -> None:
    assignments = ", ".join(f"{c} = :{c}" for c in values)
    conn.execute(
        sa.text(f"UPDATE audit_events SET {assignments} WHERE seq = :where"),
        {**values, "where": seq},
    )


def _shift_from(conn: Connection, seq: int) -> None:
    """seq → seq + 1 for every event from `seq` on (in two steps: the key is unique)."""
    conn.execute(sa.text("UPDATE audit_events SET seq = -seq WHERE seq >= :s"), {"s": seq})
    conn.execute(sa.text("UPDATE audit_events SET seq = 1 - seq WHERE seq < 0"))
    conn.execute(sa.text("UPDATE audit_head SET seq = seq + 1 WHERE id = 1"))


def _insert(conn: Connection, row: dict[str, Any]) -> None:
    columns = ", ".join(row)
    conn.execute(
        sa.text(f"INSERT INTO audit_events ({columns}) VALUES ({', '.join(':' + c for c in row)})"),
        row,
    )


def update_field(conn: Connection) -> int:
    _set(conn, 17, {"purpose": "另一个目的"})
    return 17


def update_escaped_field(conn: Connection) -> int:
    _set(conn, ESCAPED, {"actor": "client:app-2"})
    return ESCAPED


def update_json(conn: Connection) -> int:
    (row,) = _rows(conn, 33).values()
    _set(conn, 33, {"detail": row["detail"].replace('"n":33', '"n":34')})
    return 33


def update_row_count_and_rehash(conn: Connection) -> int:
    """Change a value and give the row a hash that matches it: the next link breaks."""
    (row,) = _rows(conn, 40).values()
    forged = {**event_from_row(tuple(row.values())), "row_count": 0}
    _set(conn, 40, {"row_count": 0, "hash": chain_hash(row["prev_hash"], forged)})
    return 40


def delete_row(conn: Connection) -> int:
    conn.execute(sa.text("DELETE FROM audit_events WHERE seq = 20"))
    return 20


def swap_rows(conn: Connection) -> int:
    rows = _rows(conn, 12, 15)
    for mine, theirs in ((12, 15), (15, 12)):
        _set(conn, mine, {c: v for c, v in rows[theirs].items() if c != "seq"})
    return 12


def insert_naive(conn: Connection) -> int:
    (before,) = _rows(conn, 29).values()
    _shift_from(conn, 30)
    _insert(conn, {**before, "seq": 30, "request_id": "forged", "prev_hash": before["hash"],
                   "hash": "f" * 64})  # fmt: skip
    return 30


def insert_rechained(conn: Connection) -> int:
    """A forged event at 30 with a correct link and hash; the later ones keep theirs."""
    (before,) = _rows(conn, 29).values()
    _shift_from(conn, 30)
    forged = {**event_from_row(tuple(before.values())), "seq": 30, "request_id": "forged"}
    forged_row = {**before, "seq": 30, "request_id": "forged", "prev_hash": before["hash"]}
    _insert(conn, {**forged_row, "hash": chain_hash(before["hash"], forged)})
    return 30


def truncate_tail(conn: Connection) -> int:
    conn.execute(sa.text("DELETE FROM audit_events WHERE seq > 40"))
    return 41


def truncate_tail_and_head(conn: Connection) -> int:
    """Cut the tail and wind the head back, so the next events would continue from 40."""
    conn.execute(sa.text("DELETE FROM audit_events WHERE seq > 40"))
    (row,) = _rows(conn, 40).values()
    conn.execute(
        sa.text("UPDATE audit_head SET seq = 40, hash = :h, ts = :ts WHERE id = 1"),
        {"h": row["hash"], "ts": row["ts"]},
    )
    return 41


def forge_mid_signature(conn: Connection) -> int:
    end = conn.execute(sa.text("SELECT signature FROM audit_checkpoints WHERE tree_size = 50"))
    conn.execute(
        sa.text("UPDATE audit_checkpoints SET signature = :s WHERE tree_size = 25"),
        {"s": end.scalar_one()},
    )
    return 25


def resign_nothing_but_size(conn: Connection) -> int:
    """A checkpoint that claims fewer events than it signed."""
    conn.execute(sa.text("UPDATE audit_checkpoints SET tree_size = 24 WHERE tree_size = 25"))
    return 24


Tampering = Callable[[Connection], int]
EDITS: list[Tampering] = [
    update_field,
    update_escaped_field,
    update_json,
    update_row_count_and_rehash,
    delete_row,
    swap_rows,
    insert_naive,
    insert_rechained,
    truncate_tail,
    forge_mid_signature,
    resign_nothing_but_size,
]


def attack(engine: Engine, edit: Tampering) -> int:
    """Drop the append-only guards (the attacker has DDL rights), edit, commit."""
    with engine.begin() as conn:
        for verb in VERBS:
            conn.exec_driver_sql(drop_guard(conn.dialect.name, verb))
        return edit(conn)


@pytest.mark.parametrize("edit", EDITS, ids=lambda e: e.__name__)
def test_each_edit_is_found_at_its_seq(
    edit: Tampering, client: TestClient, engine: Engine, settings: Settings, tmp_path: Path
) -> None:
    signer = keys_of(settings, engine).audit_signer
    build_log(engine, signer)
    assert verify(engine, signer.public_key).ok
    bad = attack(engine, edit)

    report = verify(engine, signer.public_key)
    assert (report.ok, report.first_bad_seq) == (False, bad), report
    assert report.verified_through == bad - 1, report

    answer = client.get("/api/v1/audit/verify", headers=auditor(client, engine))
    assert answer.status_code == 200, answer.text
    assert (answer.json()["ok"], answer.json()["first_bad_seq"]) == (False, bad), answer.json()

    command = opengate("audit", "verify", "--json", settings=settings, cwd=tmp_path)
    assert command.returncode == 1, command.stderr
    printed = json.loads(command.stdout)
    assert (printed["ok"], printed["first_bad_seq"]) == (False, bad), printed


def test_a_cut_tail_with_the_head_wound_back_is_found_too(engine: Engine, tmp_path: Path) -> None:
    signer = Signer.generate()
    build_log(engine, signer)
    bad = attack(engine, truncate_tail_and_head)
    report = verify(engine, signer.public_key)
    assert (report.ok, report.first_bad_seq) == (False, bad), report
    # New events continue the shortened chain; the checkpoint at 50 still disagrees.
    append(engine, [_event(i) for i in range(10)])
    report = verify(engine, signer.public_key)
    assert not report.ok and report.first_bad_seq is not None and report.first_bad_seq <= 50


def test_the_guards_refuse_update_and_delete(engine: Engine, tmp_path: Path) -> None:
    signer = Signer.generate()
    build_log(engine, signer)
    for statement in (
        "UPDATE audit_events SET purpose = 'x' WHERE seq = 3",
        "DELETE FROM audit_events WHERE seq = 3",
        "DELETE FROM audit_events",
    ):
        with pytest.raises(sa.exc.DBAPIError, match="append-only"), engine.begin() as conn:
            conn.exec_driver_sql(statement)
    report = verify(engine, signer.public_key)
    assert report.ok and report.events == 50 and report.signed_through == 50, report


def test_rows_moved_on_disk_still_verify(engine: Engine, tmp_path: Path) -> None:
    """Rewriting rows with their own values moves them to the end of the table on
    PostgreSQL: the verifier's fast scan meets them out of order and must read on in seq
    order rather than report them."""
    signer = Signer.generate()
    build_log(engine, signer)
    attack(engine, lambda conn: _set(conn, 3, {"purpose": _rows(conn, 3)[3]["purpose"]}) or 0)
    attack(engine, lambda conn: _set(conn, 30, {"actor": "client:app-1"}) or 0)
    report = verify(engine, signer.public_key)
    assert report.ok and report.events == 50 and report.signed_through == 50, report
