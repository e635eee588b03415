"""The append-only guards on `audit_events`: triggers that make UPDATE and DELETE raise for
everyone using the gateway's database account.

Migration 0004 creates them; `opengate audit archive` drops the DELETE guard inside its
own transaction and puts it back before committing, so no other moment ever sees the
table deletable. (A database superuser can still drop them — which is what the hash chain
and the signed checkpoints are for.) Every statement here is a constant.
"""

from __future__ import annotations

VERBS = ("UPDATE", "DELETE")

PG_FUNCTION = """
CREATE OR REPLACE FUNCTION audit_events_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'audit_events is append-only';
END
$$ LANGUAGE plpgsql
"""


def create_guard(dialect: str, verb: str) -> str:
    """The trigger refusing `verb` (on PostgreSQL it needs PG_FUNCTION to exist)."""
    head = f"CREATE TRIGGER audit_events_no_{verb.lower()} BEFORE {verb} ON audit_events "
    if dialect == "postgresql":
        return head + "FOR EACH ROW EXECUTE FUNCTION audit_events_append_only()"
    return head + "BEGIN SELECT RAISE(ABORT, 'audit_events is append-only'); END"


def drop_guard(dialect: str, verb: str) -> str:
    on_table = " ON audit_events" if dialect == "postgresql" else ""
    return f"DROP TRIGGER IF EXISTS audit_events_no_{verb.lower()}{on_table}"


def create_guards(dialect: str) -> list[str]:
    """Everything that makes the table append-only, in order."""
    function = [PG_FUNCTION] if dialect == "postgresql" else []
    return [*function, *(create_guard(dialect, verb) for verb in VERBS)]
