"""audit subject index: a call's entries (its call_sealed seal, checked on the public receipt
page) are found by subject without reading the whole chain

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-03
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_audit_log_subject", "audit_log", ["subject"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_audit_log_subject", table_name="audit_log")
