"""audit day counts and (ts, seq): the console timeline's per-day aggregate (issue 16)

Events per closed UTC day, dataset, app and outcome, counted once (audit.day_counts), so
the auditor console's timeline over a month reads about thirty rows instead of counting
every matching event again: 57 ms of heap reads for the busiest app of
bench/audit_console_search.py (docs/performance.md). And `ix_audit_events_ts` becomes
`(ts, seq)`: a period's first and last seq (audit.search) were an incremental sort over
the batch sharing the boundary ts (1,001 heap rows, 0.7 ms each), now one index entry
(0.15 ms).

Revision ID: 0011_audit_day_counts
Revises: 0010_audit_console_indexes
Create Date: 2026-12-03 18:30:00.000000

"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0011_audit_day_counts"
down_revision: str | Sequence[str] | None = "0010_audit_console_indexes"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "audit_day_counts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("day", sqlmodel.sql.sqltypes.AutoString(length=10), nullable=False),
        sa.Column("resource", sqlmodel.sql.sqltypes.AutoString(length=256), nullable=True),
        sa.Column("client_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
        sa.Column("outcome", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("events", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "ix_audit_day_counts_resource_client_day",
        "audit_day_counts",
        ["resource", "client_id", "day"],
    )
    op.create_index(
        "ix_audit_day_counts_client_resource_day",
        "audit_day_counts",
        ["client_id", "resource", "day"],
    )
    op.create_index("ix_audit_day_counts_day", "audit_day_counts", ["day"])
    op.create_table(
        "audit_days_counted",
        sa.Column("day", sqlmodel.sql.sqltypes.AutoString(length=10), nullable=False),
        sa.PrimaryKeyConstraint("day"),
    )
    op.create_index("ix_audit_events_ts_seq", "audit_events", ["ts", "seq"])
    op.drop_index("ix_audit_events_ts", table_name="audit_events")


def downgrade() -> None:
    op.create_index("ix_audit_events_ts", "audit_events", ["ts"])
    op.drop_index("ix_audit_events_ts_seq", table_name="audit_events")
    op.drop_table("audit_days_counted")
    op.drop_index("ix_audit_day_counts_day", table_name="audit_day_counts")
    op.drop_index("ix_audit_day_counts_client_resource_day", table_name="audit_day_counts")
    op.drop_index("ix_audit_day_counts_resource_client_day", table_name="audit_day_counts")
    op.drop_table("audit_day_counts")
