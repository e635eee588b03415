"""audit console indexes: one app's events on one dataset in a period (issue 16)

The auditor console's search filters by dataset (`resource`), app and time, newest first.
`audit.search` turns the time range into a seq range (ts follows chain order), so this
index answers the page with a backward range scan and, with ts and outcome included on
PostgreSQL, the per-day timeline with an index-only scan. Without it PostgreSQL walked the
primary key backward from the newest event, 1.1 s on 1,000,000 events
(bench/audit_console_search.py, docs/performance.md).

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
        "ix_audit_events_resource_client_seq",
        "audit_events",
        ["resource", "client_id", "seq"],
        unique=False,
        postgresql_include=["ts", "outcome"],
    )


def downgrade() -> None:
    op.drop_index("ix_audit_events_resource_client_seq", table_name="audit_events")
