"""open311 keys: partner apps' API keys (their secrets' hashes), and each report's key and address

Revision ID: 0023
Revises: 0022
Create Date: 2026-12-03

An admin issues a key on /admin for a named partner app with its own daily limit of reports; a
report posted with it keeps the key it came with, and the address_string it named beside its
point.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import server.db.types

revision: str = "0023"
down_revision: str | None = "0022"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _ts(name: str, nullable: bool) -> sa.Column[object]:
    return sa.Column(name, server.db.types.UTCDateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "open311_keys",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("partner", sa.String(length=80), nullable=False),
        sa.Column("secret_hash", sa.String(length=64), nullable=False),
        sa.Column("daily_limit", sa.Integer(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("created_by", sa.String(length=80), nullable=False),
        _ts("created_at", nullable=False),
        _ts("last_used_at", nullable=True),
        _ts("revoked_at", nullable=True),
        sa.Column("revoked_by", sa.String(length=80), nullable=True),
        sa.Column("revoke_reason", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("secret_hash"),
    )
    with op.batch_alter_table("threat_reports", schema=None) as batch_op:
        batch_op.add_column(sa.Column("open311_key_id", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("address", sa.String(length=250), nullable=True))
        batch_op.create_foreign_key(
            "fk_threat_reports_open311_key_id", "open311_keys", ["open311_key_id"], ["id"]
        )
        batch_op.create_index(
            "ix_threat_reports_open311_key", ["open311_key_id", "created_at"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("threat_reports", schema=None) as batch_op:
        batch_op.drop_index("ix_threat_reports_open311_key")
        batch_op.drop_constraint("fk_threat_reports_open311_key_id", type_="foreignkey")
        batch_op.drop_column("address")
        batch_op.drop_column("open311_key_id")
    op.drop_table("open311_keys")
