"""key ring: every key of the installation in the database, sealed under the master key
(issue 13, contract §9)

Revision ID: 0007_key_ring
Revises: 0005_derive
Create Date: 2026-12-03 10:00:00.000000

"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0007_key_ring"
down_revision: str | Sequence[str] | None = "0005_derive"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # The keys themselves are not made here: the migration has no master key. The first
    # `opengate migrate` / `serve` / `demo` after it creates the ring, or imports the key
    # files of the data directory (keystore.legacy).
    op.create_table(
        "key_ring",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("purpose", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("kid", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("alg", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("state", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("retired_at", sa.Float(), nullable=True),
        sa.Column("public", sa.Text(), nullable=True),
        sa.Column("master_kid", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("nonce", sa.LargeBinary(), nullable=False),
        sa.Column("sealed", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("purpose", "kid", name="uq_key_ring_purpose_kid"),
    )
    with op.batch_alter_table("key_ring", schema=None) as batch_op:
        batch_op.create_index(
            "ux_key_ring_active",
            ["purpose"],
            unique=True,
            postgresql_where=sa.text("state = 'active'"),
            sqlite_where=sa.text("state = 'active'"),
        )


def downgrade() -> None:
    with op.batch_alter_table("key_ring", schema=None) as batch_op:
        batch_op.drop_index("ux_key_ring_active")
    op.drop_table("key_ring")
