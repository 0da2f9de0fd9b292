"""cad deliveries: the EIDO posts to the CAD webhook, kept until delivered or dead-lettered

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-03

Each post of a call's EIDO document (at its answer, at its end) is a row that every node's
sweep may claim with a conditional UPDATE, retried with backoff, and listed on /admin once every
try has failed (server/actions/cad_deliveries.py, docs/cad.md).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import server.db.types

revision: str = "0022"
down_revision: str | None = "0021"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "cad_deliveries",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("call_id", sa.String(length=36), nullable=False),
        sa.Column("event", sa.String(length=16), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_at", server.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("claimed_until", server.db.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("body", sa.Text(), nullable=True),
        sa.Column("last_error", sa.String(length=255), nullable=False),
        sa.Column("created_at", server.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("delivered_at", server.db.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("dead_at", server.db.types.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["call_id"], ["calls.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_cad_deliveries_call_id", "cad_deliveries", ["call_id"])
    op.create_index("ix_cad_deliveries_state_next_at", "cad_deliveries", ["state", "next_at"])


def downgrade() -> None:
    op.drop_index("ix_cad_deliveries_state_next_at", table_name="cad_deliveries")
    op.drop_index("ix_cad_deliveries_call_id", table_name="cad_deliveries")
    op.drop_table("cad_deliveries")
