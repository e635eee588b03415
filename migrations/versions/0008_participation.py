"""participation: the 纠错 and 数据需求 workflows (issue 15) — feedback gets its version,
reporter source, handling and fix columns; demands their department, scenario, answer and
outcome; `demand_seconds` holds each account's +1 once.

Revision ID: 0008_participation
Revises: 0007_key_ring
Create Date: 2026-12-03 14:00:00.000000

"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0008_participation"
down_revision: str | Sequence[str] | None = "0007_key_ring"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

Text = sqlmodel.sql.sqltypes.AutoString
When = sqlmodel.sql.sqltypes.UTCDateTime


def upgrade() -> None:
    with op.batch_alter_table("feedback", schema=None) as batch_op:
        batch_op.add_column(sa.Column("version", sa.Integer(), nullable=True))
        batch_op.add_column(
            sa.Column("redacted", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch_op.add_column(sa.Column("source", Text(length=48), nullable=False, server_default=""))
        batch_op.add_column(sa.Column("fixed_in_version", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("handled_by", Text(length=64), nullable=True))
        batch_op.add_column(sa.Column("handled_at", When(), nullable=True))
        batch_op.create_index(batch_op.f("ix_feedback_source"), ["source"], unique=False)
        batch_op.create_index(batch_op.f("ix_feedback_status"), ["status"], unique=False)
        batch_op.create_index(batch_op.f("ix_feedback_created_at"), ["created_at"], unique=False)
    # The first schema called a new report "open"; the workflow calls it "submitted".
    op.execute("UPDATE feedback SET status = 'submitted' WHERE status = 'open'")

    with op.batch_alter_table("demands", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("department", Text(length=100), nullable=False, server_default="")
        )
        batch_op.add_column(sa.Column("scenario", Text(), nullable=False, server_default=""))
        batch_op.add_column(sa.Column("dataset_id", Text(length=64), nullable=True))
        batch_op.add_column(sa.Column("seconds", sa.Integer(), nullable=False, server_default="0"))
        batch_op.add_column(sa.Column("answered_by", Text(length=64), nullable=True))
        batch_op.add_column(sa.Column("answered_at", When(), nullable=True))
        batch_op.add_column(sa.Column("closed_at", When(), nullable=True))
        batch_op.create_index(batch_op.f("ix_demands_status"), ["status"], unique=False)
        batch_op.create_index(batch_op.f("ix_demands_created_at"), ["created_at"], unique=False)

    op.create_table(
        "demand_seconds",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("demand_id", sa.Integer(), nullable=False),
        sa.Column("account", Text(length=64), nullable=False),
        sa.Column("created_at", When(), nullable=False),
        sa.ForeignKeyConstraint(["demand_id"], ["demands.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("demand_id", "account"),
    )
    with op.batch_alter_table("demand_seconds", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_demand_seconds_demand_id"), ["demand_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("demand_seconds", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_demand_seconds_demand_id"))
    op.drop_table("demand_seconds")
    with op.batch_alter_table("demands", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_demands_created_at"))
        batch_op.drop_index(batch_op.f("ix_demands_status"))
        for column in (
            "closed_at",
            "answered_at",
            "answered_by",
            "seconds",
            "dataset_id",
            "scenario",
            "department",
        ):
            batch_op.drop_column(column)
    op.execute("UPDATE feedback SET status = 'open' WHERE status = 'submitted'")
    with op.batch_alter_table("feedback", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_feedback_created_at"))
        batch_op.drop_index(batch_op.f("ix_feedback_status"))
        batch_op.drop_index(batch_op.f("ix_feedback_source"))
        for column in (
            "handled_at",
            "handled_by",
            "fixed_in_version",
            "source",
            "redacted",
            "version",
        ):
            batch_op.drop_column(column)
