"""metering once per audit batch on PostgreSQL (issue 17, decision 0022)

The audit writer appends a batch of events with one COPY; 0012's row trigger ran a join on
`grants` and `scenarios` and an upsert into `usage_ledger` for every metered row of it.
This trigger runs once per statement over the rows it inserted (a transition table): one
grouped INSERT … SELECT … GROUP BY … ON CONFLICT for the whole batch. Grouping first is
what makes one statement possible: ON CONFLICT DO UPDATE may not touch one ledger line
twice. The ledger line still commits in the audit row's transaction, and its figures are
the same sums. SQLite keeps its row trigger: its writer inserts row by row anyway.

Revision ID: 0016_statement_metering
Revises: 0015_signing_secrets
Create Date: 2026-12-04 01:20:00.000000

"""

from collections.abc import Sequence

from alembic import op

revision: str = "0016_statement_metering"
down_revision: str | Sequence[str] | None = "0015_signing_secrets"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# 0012's filter, spelled the same (a migration keeps its own copy: history must not move).
METERED = (
    "('data.records', 'data.record', 'data.export', 'data.aggregate', 'data.verify', "
    "'service.call')"
)
FREE = "('public_governance', 'public_welfare')"

STATEMENT_FUNCTION = f"""
CREATE OR REPLACE FUNCTION audit_meter() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO usage_ledger (client_id, product_id, day, free, calls, rows)
  SELECT n.client_id, g.product_id,
         ((n.ts::timestamptz AT TIME ZONE 'UTC') + interval '8 hours')::date,
         coalesce(s.category IN {FREE}, false), count(*), coalesce(sum(n.row_count), 0)
  FROM new_rows n JOIN grants g ON g.id = n.grant_id
  LEFT JOIN scenarios s ON s.id = g.scenario_id
  WHERE n.outcome = 'allowed' AND n.grant_id IS NOT NULL AND n.action IN {METERED}
    AND g.product_id IS NOT NULL
  GROUP BY 1, 2, 3, 4
  ON CONFLICT (client_id, product_id, day, free)
  DO UPDATE SET calls = usage_ledger.calls + EXCLUDED.calls,
                rows = usage_ledger.rows + EXCLUDED.rows;
  RETURN NULL;
END $$
"""  # noqa: S608 (METERED and FREE are constants of this module)

STATEMENT_TRIGGER = """
CREATE TRIGGER audit_meter AFTER INSERT ON audit_events
REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION audit_meter()
"""

# 0012's row trigger, for the downgrade (and for bench.metering_cost's before/after).
ROW_FUNCTION = f"""
CREATE OR REPLACE FUNCTION audit_meter() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO usage_ledger (client_id, product_id, day, free, calls, rows)
  SELECT NEW.client_id, g.product_id,
         ((NEW.ts::timestamptz AT TIME ZONE 'UTC') + interval '8 hours')::date,
         coalesce(s.category IN {FREE}, false), 1, coalesce(NEW.row_count, 0)
  FROM grants g LEFT JOIN scenarios s ON s.id = g.scenario_id
  WHERE g.id = NEW.grant_id AND g.product_id IS NOT NULL
  ON CONFLICT (client_id, product_id, day, free)
  DO UPDATE SET calls = usage_ledger.calls + 1, rows = usage_ledger.rows + EXCLUDED.rows;
  RETURN NULL;
END $$
"""  # noqa: S608

ROW_TRIGGER = f"""
CREATE TRIGGER audit_meter AFTER INSERT ON audit_events FOR EACH ROW
WHEN (NEW.outcome = 'allowed' AND NEW.grant_id IS NOT NULL AND NEW.action IN {METERED})
EXECUTE FUNCTION audit_meter()
"""

DROP_TRIGGER = "DROP TRIGGER IF EXISTS audit_meter ON audit_events"


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(DROP_TRIGGER)
        op.execute(STATEMENT_FUNCTION)
        op.execute(STATEMENT_TRIGGER)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(DROP_TRIGGER)
        op.execute(ROW_FUNCTION)
        op.execute(ROW_TRIGGER)
