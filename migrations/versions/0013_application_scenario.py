"""applications name their scenario and product (issue 17, contract §13)

A developer's application says what the data is for (the scenario, 应用场景) and, for an
operator, which data product it will be used in; approving the application approves the
scenario with the grant and binds the grant to both.

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


def downgrade() -> None:
    with op.batch_alter_table("applications", schema=None) as batch_op:
        batch_op.drop_constraint("fk_applications_product_id", type_="foreignkey")
        batch_op.drop_constraint("fk_applications_scenario_id", type_="foreignkey")
        batch_op.drop_column("product_id")
        batch_op.drop_column("scenario_id")
