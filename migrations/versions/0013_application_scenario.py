"""applications name their scenario and product; issued statements are immutable
(issue 17, contract §13)

A developer's application says what the data is for (the scenario, 应用场景) and, for an
operator, which data product it will be used in; approving the application approves the
scenario with the grant and binds the grant to both. An issued statement is signed; the
database also refuses to UPDATE or DELETE it, for everyone using the gateway's account.

Revision ID: 0013_application_scenario
Revises: 0012_operation
Create Date: 2026-12-04 01:10:00.000000

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013_application_scenario"
down_revision: str | Sequence[str] | None = "0012_operation"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


PG_GUARD = """
CREATE FUNCTION statements_immutable() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'an issued statement is immutable';
END $$
"""
VERBS = ("UPDATE", "DELETE")


def upgrade() -> None:
    with op.batch_alter_table("applications", schema=None) as batch_op:
        batch_op.add_column(sa.Column("scenario_id", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("product_id", sa.Integer(), nullable=True))
        batch_op.create_foreign_key(
            "fk_applications_scenario_id", "scenarios", ["scenario_id"], ["id"]
        )
        batch_op.create_foreign_key(
            "fk_applications_product_id", "products", ["product_id"], ["id"]
        )
    postgres = op.get_bind().dialect.name == "postgresql"
    if postgres:
        op.execute(PG_GUARD)
    for verb in VERBS:
        head = f"CREATE TRIGGER statements_no_{verb.lower()} BEFORE {verb} ON statements "
        if postgres:
            op.execute(head + "FOR EACH ROW EXECUTE FUNCTION statements_immutable()")
        else:
            op.execute(head + "BEGIN SELECT RAISE(ABORT, 'an issued statement is immutable'); END")


def downgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    for verb in VERBS:
        on_table = " ON statements" if postgres else ""
        op.execute(f"DROP TRIGGER IF EXISTS statements_no_{verb.lower()}{on_table}")
    if postgres:
        op.execute("DROP FUNCTION IF EXISTS statements_immutable()")
    with op.batch_alter_table("applications", schema=None) as batch_op:
        batch_op.drop_constraint("fk_applications_product_id", type_="foreignkey")
        batch_op.drop_constraint("fk_applications_scenario_id", type_="foreignkey")
        batch_op.drop_column("product_id")
        batch_op.drop_column("scenario_id")
