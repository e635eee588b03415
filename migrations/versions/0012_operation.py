"""operation: zones, operators and their apps, agreements, scenarios, products, the usage
ledger with the trigger that keeps it beside the audit log, statements; grants name their
scenario, product and agreement (issue 17, contract §13).

The ledger is written only by `audit_meter`, an AFTER INSERT trigger on `audit_events`:
a metered call's ledger line commits in the same transaction as its audit row, whichever
writer (SQLite's, PostgreSQL's COPY) appended it, so the two can never disagree.

Revision ID: 0012_operation
Revises: 0011_audit_day_counts
Create Date: 2026-12-03 18:40:00.000000

"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0012_operation"
down_revision: str | Sequence[str] | None = "0011_audit_day_counts"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

Text = sqlmodel.sql.sqltypes.AutoString
When = sqlmodel.sql.sqltypes.UTCDateTime

# The calls a product meters: reading data and calling services, allowed ones only.
METERED = (
    "('data.records', 'data.record', 'data.export', 'data.aggregate', 'data.verify', "
    "'service.call')"
)
FREE = "('public_governance', 'public_welfare')"

SQLITE_TRIGGER = f"""
CREATE TRIGGER audit_meter AFTER INSERT ON audit_events
WHEN NEW.outcome = 'allowed' AND NEW.grant_id IS NOT NULL AND NEW.action IN {METERED}
BEGIN
  INSERT INTO usage_ledger (client_id, product_id, day, free, calls, rows)
  SELECT NEW.client_id, g.product_id, date(substr(NEW.ts, 1, 19), '+8 hours'),
         coalesce(s.category IN {FREE}, 0), 1, coalesce(NEW.row_count, 0)
  FROM grants g LEFT JOIN scenarios s ON s.id = g.scenario_id
  WHERE g.id = NEW.grant_id AND g.product_id IS NOT NULL
  ON CONFLICT (client_id, product_id, day, free)
  DO UPDATE SET calls = calls + 1, rows = rows + excluded.rows;
END
"""  # noqa: S608 (METERED and FREE are constants of this module)

POSTGRES_FUNCTION = f"""
CREATE FUNCTION audit_meter() RETURNS trigger LANGUAGE plpgsql AS $$
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

POSTGRES_TRIGGER = f"""
CREATE TRIGGER audit_meter AFTER INSERT ON audit_events FOR EACH ROW
WHEN (NEW.outcome = 'allowed' AND NEW.grant_id IS NOT NULL AND NEW.action IN {METERED})
EXECUTE FUNCTION audit_meter()
"""


def upgrade() -> None:
    op.create_table(
        "zones",
        sa.Column("id", Text(length=64), nullable=False),
        sa.Column("name", Text(length=100), nullable=False),
        sa.Column("description", Text(), nullable=False),
        sa.Column("created_at", When(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("name"),
    )
    op.create_table(
        "operators",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", Text(length=200), nullable=False),
        sa.Column("credit_code", Text(length=18), nullable=False),
        sa.Column("contact", Text(length=200), nullable=False),
        sa.Column("created_at", When(), nullable=False),
        sa.Column("created_by", Text(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("credit_code"),
    )
    op.create_table(
        "operator_apps",
        sa.Column("client_id", Text(length=64), nullable=False),
        sa.Column("operator_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["client_id"], ["apps.client_id"]),
        sa.ForeignKeyConstraint(["operator_id"], ["operators.id"]),
        sa.PrimaryKeyConstraint("client_id"),
    )
    op.create_index(op.f("ix_operator_apps_operator_id"), "operator_apps", ["operator_id"])
    op.create_table(
        "agreements",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("operator_id", sa.Integer(), nullable=False),
        sa.Column("title", Text(length=200), nullable=False),
        sa.Column("datasets", sa.JSON(), nullable=False),
        sa.Column("services", sa.JSON(), nullable=False),
        sa.Column("modes", sa.JSON(), nullable=False),
        sa.Column("starts_on", sa.Date(), nullable=False),
        sa.Column("ends_on", sa.Date(), nullable=False),
        sa.Column("status", Text(length=16), nullable=False),
        sa.Column("status_reason", Text(), nullable=False),
        sa.Column("created_at", When(), nullable=False),
        sa.Column("updated_at", When(), nullable=False),
        sa.ForeignKeyConstraint(["operator_id"], ["operators.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(op.f("ix_agreements_operator_id"), "agreements", ["operator_id"])
    op.create_index(op.f("ix_agreements_status"), "agreements", ["status"])
    op.create_table(
        "scenarios",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", Text(length=200), nullable=False),
        sa.Column("category", Text(length=32), nullable=False),
        sa.Column("zone_id", Text(length=64), nullable=True),
        sa.Column("description", Text(), nullable=False),
        sa.Column("organization", Text(length=200), nullable=False),
        sa.Column("approved", sa.Boolean(), nullable=False),
        sa.Column("approved_at", When(), nullable=True),
        sa.Column("created_at", When(), nullable=False),
        sa.ForeignKeyConstraint(["zone_id"], ["zones.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "products",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("code", Text(length=64), nullable=False),
        sa.Column("operator_id", sa.Integer(), nullable=False),
        sa.Column("title", Text(length=200), nullable=False),
        sa.Column("description", Text(), nullable=False),
        sa.Column("zone_id", Text(length=64), nullable=True),
        sa.Column("datasets", sa.JSON(), nullable=False),
        sa.Column("services", sa.JSON(), nullable=False),
        sa.Column("modes", sa.JSON(), nullable=False),
        sa.Column("unit", Text(length=16), nullable=False),
        sa.Column("price_fen", sa.Integer(), nullable=False),
        sa.Column("cap_fen", sa.Integer(), nullable=False),
        sa.Column("created_at", When(), nullable=False),
        sa.Column("updated_at", When(), nullable=False),
        sa.ForeignKeyConstraint(["operator_id"], ["operators.id"]),
        sa.ForeignKeyConstraint(["zone_id"], ["zones.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("code"),
    )
    op.create_index(op.f("ix_products_operator_id"), "products", ["operator_id"])
    op.create_table(
        "usage_ledger",
        sa.Column("client_id", Text(length=64), nullable=False),
        sa.Column("product_id", sa.Integer(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("free", sa.Boolean(), nullable=False),
        sa.Column("calls", sa.Integer(), nullable=False),
        sa.Column("rows", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("client_id", "product_id", "day", "free"),
    )
    op.create_table(
        "statements",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("month", Text(length=7), nullable=False),
        sa.Column("lines", sa.JSON(), nullable=False),
        sa.Column("total_fen", sa.Integer(), nullable=False),
        sa.Column("digest", Text(length=64), nullable=False),
        sa.Column("signature", Text(length=200), nullable=False),
        sa.Column("key_id", Text(length=64), nullable=False),
        sa.Column("issued_at", When(), nullable=False),
        sa.Column("issued_by", Text(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("month"),
    )
    with op.batch_alter_table("grants", schema=None) as batch_op:
        batch_op.add_column(sa.Column("scenario_id", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("product_id", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("agreement_id", sa.Integer(), nullable=True))
        batch_op.create_foreign_key("fk_grants_scenario_id", "scenarios", ["scenario_id"], ["id"])
        batch_op.create_foreign_key("fk_grants_product_id", "products", ["product_id"], ["id"])
        batch_op.create_foreign_key(
            "fk_grants_agreement_id", "agreements", ["agreement_id"], ["id"]
        )
    if op.get_bind().dialect.name == "postgresql":
        op.execute(POSTGRES_FUNCTION)
        op.execute(POSTGRES_TRIGGER)
    else:
        op.execute(SQLITE_TRIGGER)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS audit_meter ON audit_events")
        op.execute("DROP FUNCTION IF EXISTS audit_meter()")
    else:
        op.execute("DROP TRIGGER IF EXISTS audit_meter")
    with op.batch_alter_table("grants", schema=None) as batch_op:
        batch_op.drop_constraint("fk_grants_agreement_id", type_="foreignkey")
        batch_op.drop_constraint("fk_grants_product_id", type_="foreignkey")
        batch_op.drop_constraint("fk_grants_scenario_id", type_="foreignkey")
        batch_op.drop_column("agreement_id")
        batch_op.drop_column("product_id")
        batch_op.drop_column("scenario_id")
    for table in ("statements", "usage_ledger", "products", "scenarios", "agreements"):
        op.drop_table(table)
    op.drop_index(op.f("ix_operator_apps_operator_id"), table_name="operator_apps")
    for table in ("operator_apps", "operators", "zones"):
        op.drop_table(table)
