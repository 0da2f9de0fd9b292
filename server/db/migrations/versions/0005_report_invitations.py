"""report invitations: when the author of a threat report was invited to a video call

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-25
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import server.db.types

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("threat_reports", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("invited_at", server.db.types.UTCDateTime(timezone=True), nullable=True)
        )


def downgrade() -> None:
    with op.batch_alter_table("threat_reports", schema=None) as batch_op:
        batch_op.drop_column("invited_at")
