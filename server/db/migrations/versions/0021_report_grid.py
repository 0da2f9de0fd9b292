"""report grid: each report's public point as a cell of the map's grid, for server-side clusters

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-02

The public map asks only for what it shows, clustered on the server by zoom and bounding box
(server/actions/threats/clusters.py); the cell is kept on the row (server/db/map_grid.py) so
that both SQLite and PostgreSQL group by it on an index. Existing reports get theirs here.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from server.db.map_grid import report_grid

revision: str = "0021"
down_revision: str | None = "0020"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_BATCH = 1000


def upgrade() -> None:
    op.add_column("threat_reports", sa.Column("grid_x", sa.Integer(), nullable=True))
    op.add_column("threat_reports", sa.Column("grid_y", sa.Integer(), nullable=True))
    bind = op.get_bind()
    reports = sa.table(
        "threat_reports",
        sa.column("id", sa.Integer),
        sa.column("lat", sa.Float),
        sa.column("lon", sa.Float),
        sa.column("sensitive", sa.Boolean),
        sa.column("grid_x", sa.Integer),
        sa.column("grid_y", sa.Integer),
    )
    rows = bind.execute(sa.select(reports.c.id, reports.c.lat, reports.c.lon, reports.c.sensitive))
    cells = [(row.id, *report_grid(row.lat, row.lon, bool(row.sensitive))) for row in rows]
    update = (
        sa.update(reports)
        .where(reports.c.id == sa.bindparam("row_id"))
        .values(grid_x=sa.bindparam("x"), grid_y=sa.bindparam("y"))
    )
    for start in range(0, len(cells), _BATCH):
        batch = cells[start : start + _BATCH]
        bind.execute(update, [{"row_id": i, "x": x, "y": y} for i, x, y in batch])
    with op.batch_alter_table("threat_reports", schema=None) as batch_op:
        batch_op.alter_column("grid_x", existing_type=sa.Integer(), nullable=False)
        batch_op.alter_column("grid_y", existing_type=sa.Integer(), nullable=False)
        batch_op.create_index("ix_threat_reports_grid", ["grid_x", "grid_y"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_threat_reports_grid", table_name="threat_reports")
    op.drop_column("threat_reports", "grid_y")
    op.drop_column("threat_reports", "grid_x")
