"""audit console indexes: one app's events on one dataset in a period (issue 16)

The auditor console's search filters by dataset (`resource`), app and time; with
(client_id, ts) alone PostgreSQL reads every event of the app in the period and drops
those of other datasets (bench/audit_console_search.py, docs/performance.md).

Revision ID: 0010_audit_console_indexes
Revises: 0009_web_sessions
Create Date: 2026-12-03 14:30:00.000000

"""

from collections.abc import Sequence

from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0010_audit_console_indexes"
down_revision: str | Sequence[str] | None = "0009_web_sessions"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "ix_audit_events_resource_client_ts",
        "audit_events",
        ["resource", "client_id", "ts"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index("ix_audit_events_resource_client_ts", table_name="audit_events")
