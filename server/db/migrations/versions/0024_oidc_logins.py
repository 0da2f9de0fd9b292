"""oidc logins: sign-ins started at an OpenID Connect provider, until their callback

Revision ID: 0024
Revises: 0023
Create Date: 2026-12-03

The state (as its hash), nonce and PKCE verifier of each sign-in started at a provider, bound to
the browser that started it; the callback deletes its row, so a state is good once.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import server.db.types

revision: str = "0024"
down_revision: str | None = "0023"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "oidc_logins",
        sa.Column("state_hash", sa.String(length=64), nullable=False),
        sa.Column("browser_hash", sa.String(length=64), nullable=False),
        sa.Column("provider", sa.String(length=32), nullable=False),
        sa.Column("nonce", sa.String(length=128), nullable=False),
        sa.Column("code_verifier", sa.String(length=128), nullable=False),
        sa.Column("next_path", sa.String(length=512), nullable=False),
        sa.Column("created_at", server.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("state_hash"),
    )
    with op.batch_alter_table("oidc_logins", schema=None) as batch_op:
        batch_op.create_index("ix_oidc_logins_created_at", ["created_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("oidc_logins", schema=None) as batch_op:
        batch_op.drop_index("ix_oidc_logins_created_at")
    op.drop_table("oidc_logins")
