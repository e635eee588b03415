"""interface services (接口服务, issue 18, contract §12)

A department's live API published through the gateway: its catalog entry is a `datasets`
row of kind `service` (so it is listed, applied for and granted like a dataset: grants keep
their one foreign key), and `services` holds the imported `service.json` per version —
parameters, response paths with their levels and pii, the upstream.

Revision ID: 0014_services
Revises: 0013_application_scenario
Create Date: 2026-12-04 01:30:00.000000

"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0014_services"
down_revision: str | Sequence[str] | None = "0013_application_scenario"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

Text = sqlmodel.sql.sqltypes.AutoString


def upgrade() -> None:
    with op.batch_alter_table("datasets", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("kind", Text(length=16), nullable=False, server_default="table")
        )
    op.create_table(
        "services",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("service_id", Text(length=64), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("spec", sa.JSON(), nullable=False),
        sa.Column("source_sha256", Text(length=64), nullable=False),
        sa.Column("imported_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["service_id"], ["datasets.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("service_id", "version"),
    )


def downgrade() -> None:
    op.drop_table("services")
    with op.batch_alter_table("datasets", schema=None) as batch_op:
        batch_op.drop_column("kind")
