"""calls.recording_paused_at: a call whose recording is paused (its media node's disk low)

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import server.db.types

revision: str = "0019"
down_revision: str | None = "0018"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("calls") as batch:
        batch.add_column(
            sa.Column(
                "recording_paused_at", server.db.types.UTCDateTime(timezone=True), nullable=True
            )
        )


def downgrade() -> None:
    # Plain DROP COLUMN (SQLite 3.35+), not a batch: a batch copies ``calls`` and drops the
    # old table, which the other tables' foreign keys refuse once they hold rows.
    op.drop_column("calls", "recording_paused_at")
