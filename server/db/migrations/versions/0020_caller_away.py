"""caller away: since when a queued call's caller has had no page connected

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-02

Set when a call is created (its page has not connected yet) and when its caller's last page
goes; cleared when a page connects. Every node sweeps queued calls away past the grace
(server/actions/abandonment.py), so a call whose page never connected, or whose node died, is
abandoned all the same. Existing queued calls start with none: the first sweep that finds no
page connected sets it.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import server.db.types

revision: str = "0020"
down_revision: str | None = "0019"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("calls", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "caller_away_since", server.db.types.UTCDateTime(timezone=True), nullable=True
            )
        )


def downgrade() -> None:
    # Plain DROP COLUMN (SQLite 3.35+), not a batch: a batch copies ``calls`` and drops the
    # old table, which the other tables' foreign keys refuse once they hold rows.
    op.drop_column("calls", "caller_away_since")
