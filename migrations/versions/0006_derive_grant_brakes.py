"""grant brakes: ε floor and ceiling, suspension, verify misses and per-subject counts,
administrator notices (issue 12, task derive)

Revision ID: 0005_derive
Revises: 0004
Create Date: 2026-12-01 09:00:00.000000

"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0005_derive"
down_revision: str | Sequence[str] | None = "0005_identity"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("grants", schema=None) as batch_op:
        batch_op.add_column(sa.Column("epsilon_floor", sa.Float(), nullable=True))
        batch_op.add_column(sa.Column("epsilon_ceiling", sa.Float(), nullable=True))
        batch_op.add_column(
            sa.Column("suspended_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True)
        )
        batch_op.add_column(
            sa.Column(
                "suspend_reason",
                sqlmodel.sql.sqltypes.AutoString(),
                nullable=False,
                server_default="",
            )
        )
    with op.batch_alter_table("grant_usage", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("verify_misses", sa.Integer(), nullable=False, server_default="0")
        )
    op.create_table(
        "grant_verify_subjects",
        sa.Column("grant_id", sa.Integer(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("digest", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("calls", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["grant_id"], ["grants.id"]),
        sa.PrimaryKeyConstraint("grant_id", "day", "digest"),
    )
    op.create_table(
        "admin_notices",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("created_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("kind", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("grant_id", sa.Integer(), nullable=True),
        sa.Column("client_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
        sa.Column("dataset_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
        sa.Column("message", sqlmodel.sql.sqltypes.AutoString(length=500), nullable=False),
        sa.Column("read_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.Column("read_by", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(["grant_id"], ["grants.id"]),
        sa.ForeignKeyConstraint(["read_by"], ["users.id"]),
        sa.PrimaryKeyConstraint("id"),
    )


def downgrade() -> None:
    op.drop_table("admin_notices")
    op.drop_table("grant_verify_subjects")
    with op.batch_alter_table("grant_usage", schema=None) as batch_op:
        batch_op.drop_column("verify_misses")
    with op.batch_alter_table("grants", schema=None) as batch_op:
        batch_op.drop_column("suspend_reason")
        batch_op.drop_column("suspended_at")
        batch_op.drop_column("epsilon_ceiling")
        batch_op.drop_column("epsilon_floor")
