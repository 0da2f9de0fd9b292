"""threat reports: the KMZB categories (seeded), reports, photos, history, confirmations

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import server.db.types

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# KMZB's published list, in its order; kept here (not imported) so this migration never changes.
CATEGORY_CODES = (
    "vandalism",
    "unguarded_bathing_area",
    "illegal_dumping",
    "minors_at_risk",
    "poaching",
    "dangerous_water_place",
    "dangerous_venue",
    "illegal_tree_felling",
    "illegal_car_racing",
    "illegal_parking",
    "unguarded_railway_crossing",
    "bad_road_infrastructure",
    "greenery_destruction",
    "homeless_needing_help",
    "quad_bikes_in_forest",
    "speeding",
    "alcohol_in_prohibited_place",
    "drug_use",
    "stray_dogs",
    "grass_burning",
    "wild_animal_road_incident",
    "animal_cruelty",
    "bad_traffic_organisation",
    "begging",
)


def upgrade() -> None:
    categories = op.create_table(
        "report_categories",
        sa.Column("code", sa.String(length=64), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("code"),
    )
    op.bulk_insert(
        categories,
        [{"code": code, "position": i, "active": True} for i, code in enumerate(CATEGORY_CODES)],
    )
    op.create_table(
        "threat_reports",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("category", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("lat", sa.Float(), nullable=False),
        sa.Column("lon", sa.Float(), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("days", sa.String(length=32), nullable=False),
        sa.Column("time_of_day", sa.String(length=16), nullable=False),
        sa.Column("contact", sa.String(length=200), nullable=True),
        sa.Column("sensitive", sa.Boolean(), nullable=False),
        sa.Column("public_note", sa.Text(), nullable=True),
        sa.Column("confirmations", sa.Integer(), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("call_id", sa.String(length=36), nullable=True),
        sa.Column("created_by", sa.Integer(), nullable=True),
        sa.Column("follow_token_hash", sa.String(length=64), nullable=True),
        sa.Column("remote", sa.String(length=64), nullable=False),
        sa.Column("created_at", server.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", server.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("read_at", server.db.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("verified_at", server.db.types.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["call_id"],
            ["calls.id"],
        ),
        sa.ForeignKeyConstraint(
            ["category"],
            ["report_categories.code"],
        ),
        sa.ForeignKeyConstraint(
            ["created_by"],
            ["users.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("follow_token_hash"),
    )
    with op.batch_alter_table("threat_reports", schema=None) as batch_op:
        batch_op.create_index("ix_threat_reports_lat_lon", ["lat", "lon"], unique=False)
        batch_op.create_index(
            "ix_threat_reports_status_category", ["status", "category"], unique=False
        )

    op.create_table(
        "report_confirmations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("report_id", sa.Integer(), nullable=False),
        sa.Column("client_key", sa.String(length=80), nullable=False),
        sa.Column("at", server.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["report_id"],
            ["threat_reports.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("report_id", "client_key"),
    )
    with op.batch_alter_table("report_confirmations", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_report_confirmations_report_id"), ["report_id"], unique=False
        )

    op.create_table(
        "report_history",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("report_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("actor", sa.String(length=80), nullable=False),
        sa.Column("from_status", sa.String(length=16), nullable=True),
        sa.Column("to_status", sa.String(length=16), nullable=True),
        sa.Column("forwarded_to", sa.String(length=32), nullable=True),
        sa.Column("public_note", sa.Text(), nullable=True),
        sa.Column("internal_note", sa.Text(), nullable=True),
        sa.Column("at", server.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["report_id"],
            ["threat_reports.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("report_history", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_report_history_report_id"), ["report_id"], unique=False
        )

    op.create_table(
        "report_photos",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("report_id", sa.Integer(), nullable=False),
        sa.Column("n", sa.Integer(), nullable=False),
        sa.Column("original_path", sa.String(length=512), nullable=False),
        sa.Column("content_type", sa.String(length=32), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("size_bytes", sa.Integer(), nullable=False),
        sa.Column("public_path", sa.String(length=512), nullable=False),
        sa.Column("public_sha256", sa.String(length=64), nullable=False),
        sa.Column("width", sa.Integer(), nullable=False),
        sa.Column("height", sa.Integer(), nullable=False),
        sa.Column("at", server.db.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["report_id"],
            ["threat_reports.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("report_id", "n"),
    )
    with op.batch_alter_table("report_photos", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_report_photos_report_id"), ["report_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("report_photos", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_report_photos_report_id"))

    op.drop_table("report_photos")
    with op.batch_alter_table("report_history", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_report_history_report_id"))

    op.drop_table("report_history")
    with op.batch_alter_table("report_confirmations", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_report_confirmations_report_id"))

    op.drop_table("report_confirmations")
    with op.batch_alter_table("threat_reports", schema=None) as batch_op:
        batch_op.drop_index("ix_threat_reports_status_category")
        batch_op.drop_index("ix_threat_reports_lat_lon")

    op.drop_table("threat_reports")
    op.drop_table("report_categories")
