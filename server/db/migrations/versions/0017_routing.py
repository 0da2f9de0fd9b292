"""routing: operators' languages, the state they set, a queued call's ring (one per operator at
a time) and the rings an operator declined

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import server.db.types

revision: str = "0017"
down_revision: str | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("skills", sa.String(length=32), nullable=False, server_default="")
        )
    with op.batch_alter_table("calls", schema=None) as batch_op:
        batch_op.add_column(sa.Column("ringing_operator_id", sa.Integer(), nullable=True))
        batch_op.add_column(
            sa.Column("ring_until", server.db.types.UTCDateTime(timezone=True), nullable=True)
        )
        batch_op.create_foreign_key(
            "fk_calls_ringing_operator_id_users", "users", ["ringing_operator_id"], ["id"]
        )
        batch_op.create_index(
            "ux_calls_ringing_operator",
            ["ringing_operator_id"],
            unique=True,
            sqlite_where=sa.text("ringing_operator_id IS NOT NULL"),
            postgresql_where=sa.text("ringing_operator_id IS NOT NULL"),
        )
    op.create_table(
        "operator_statuses",
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("note", sa.String(length=200), nullable=False),
        sa.Column("since", server.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("missed_at", server.db.types.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"]),
        sa.PrimaryKeyConstraint("user_id"),
    )
    op.create_table(
        "call_declines",
        sa.Column("call_id", sa.String(length=36), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("at", server.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["call_id"], ["calls.id"]),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"]),
        sa.PrimaryKeyConstraint("call_id", "user_id"),
    )


def downgrade() -> None:
    op.drop_table("call_declines")
    op.drop_table("operator_statuses")
    with op.batch_alter_table("calls", schema=None) as batch_op:
        batch_op.drop_index("ux_calls_ringing_operator")
        batch_op.drop_constraint("fk_calls_ringing_operator_id_users", type_="foreignkey")
        batch_op.drop_column("ring_until")
        batch_op.drop_column("ringing_operator_id")
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_column("skills")
