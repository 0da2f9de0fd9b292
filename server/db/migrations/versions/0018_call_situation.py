"""call situation: what the caller said is happening (one optional tap on the start screen)

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0018"
down_revision: str | None = "0017"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("calls") as batch:
        batch.add_column(sa.Column("situation", sa.String(length=32), nullable=True))


def downgrade() -> None:
    # Plain DROP COLUMN (SQLite 3.35+), not a batch: a batch copies ``calls`` and drops the
    # old table, which the other tables' foreign keys refuse once they hold rows.
    op.drop_column("calls", "situation")
