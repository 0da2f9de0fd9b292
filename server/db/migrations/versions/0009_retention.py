"""retention: legal holds on calls, purged evidence rows, redacted copies

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import server.db.types

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Evidence rows whose files retention deletes: the row and its hash stay, marked purged.
PURGED_TABLES = ("recordings", "snapshots", "call_photos", "report_photos")


def _ts(name: str, nullable: bool = True) -> sa.Column[object]:
    return sa.Column(name, server.db.types.UTCDateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    with op.batch_alter_table("calls", schema=None) as batch_op:
        batch_op.add_column(_ts("held_at"))
        batch_op.add_column(sa.Column("held_by", sa.String(length=80), nullable=True))
        batch_op.add_column(sa.Column("hold_reason", sa.Text(), nullable=True))
    for table in PURGED_TABLES:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(_ts("purged_at"))
    op.create_table(
        "redactions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("call_id", sa.String(length=36), nullable=False),
        sa.Column("segment", sa.Integer(), nullable=False),
        sa.Column("source_sha256", sa.String(length=64), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("requested_by", sa.String(length=80), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        _ts("requested_at", nullable=False),
        sa.Column("path", sa.String(length=512), nullable=True),
        sa.Column("sha256", sa.String(length=64), nullable=True),
        sa.Column("size_bytes", sa.Integer(), nullable=True),
        sa.Column("frames", sa.Integer(), nullable=True),
        sa.Column("frames_with_faces", sa.Integer(), nullable=True),
        _ts("done_at"),
        _ts("purged_at"),
        sa.ForeignKeyConstraint(["call_id"], ["calls.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_redactions_call_id", "redactions", ["call_id"], unique=False)


def downgrade() -> None:
    # Plain DROP COLUMN (SQLite 3.35+), not a batch: a batch copies ``calls`` and drops the
    # old table, which the other tables' foreign keys refuse.
    op.drop_index("ix_redactions_call_id", table_name="redactions")
    op.drop_table("redactions")
    for table in PURGED_TABLES:
        op.drop_column(table, "purged_at")
    for column in ("hold_reason", "held_by", "held_at"):
        op.drop_column("calls", column)
