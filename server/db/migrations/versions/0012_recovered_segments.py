"""recovered segments: a recording segment closed after the process writing it died

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-03

``recovered`` marks it; ``playable_path`` (a storage key), ``playable_sha256`` and
``playable_size_bytes`` name the remuxed copy of its whole clusters beside the original, which
is kept as its writer left it (media/recovery.py). Existing rows were closed by their writers.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("recordings", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("recovered", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch_op.add_column(sa.Column("playable_path", sa.String(length=512), nullable=True))
        batch_op.add_column(sa.Column("playable_sha256", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("playable_size_bytes", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("recordings", schema=None) as batch_op:
        batch_op.drop_column("playable_size_bytes")
        batch_op.drop_column("playable_sha256")
        batch_op.drop_column("playable_path")
        batch_op.drop_column("recovered")
