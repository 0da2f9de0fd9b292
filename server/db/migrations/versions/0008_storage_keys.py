"""storage keys: stored files' rows name a key under STORAGE_DIR instead of a node's path

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02

Each row's path is read as the node that wrote it read it (relative ones against the working
directory the migration runs in, the node's). Under ``STORAGE_DIR`` it becomes its key; under
``DATA_DIR`` (the old layout, ``DATA_DIR/photos/...``) it becomes the same key when the file is
found there under ``STORAGE_DIR`` (moved before migrating, docs/operations.md); anywhere else
it is kept as an absolute path, which the storage reads where it lies. The audit chain holds
hashes, never paths: it is untouched.
"""

import os
from collections.abc import Callable, Sequence
from pathlib import Path

import sqlalchemy as sa
from alembic import context, op

from server.core.storage import check_key, key_of

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COLUMNS = (
    ("recordings", "path"),
    ("snapshots", "path"),
    ("call_photos", "path"),
    ("report_photos", "original_path"),
    ("report_photos", "public_path"),
)


def _roots() -> tuple[Path, Path]:
    attributes = context.config.attributes
    if "storage_dir" in attributes:
        return Path(attributes["storage_dir"]), Path(attributes["data_dir"])
    from config import load_settings  # run by alembic itself: the node's environment

    settings = load_settings()
    return settings.storage_dir, settings.DATA_DIR


def _is_key(value: str, root: Path) -> bool:
    try:
        check_key(value)
    except ValueError:
        return False
    return (root / value).is_file()


def to_key(value: str, root: Path, data_dir: Path) -> str:
    if not value.startswith("/") and _is_key(value, root):
        return value  # written by a node that already stored keys
    path = Path(value)
    key = key_of(path, root)
    if key is not None:
        return key
    moved = key_of(path, data_dir)
    if moved is not None and (root / moved).is_file():
        return moved
    return os.path.normpath(path.absolute())


def _rewrite(convert: Callable[[str], str]) -> None:
    bind = op.get_bind()
    for table, column in COLUMNS:
        rows = sa.table(table, sa.column("id", sa.Integer), sa.column(column, sa.String))
        for row_id, value in bind.execute(sa.select(rows.c.id, rows.c[column])).all():
            new = convert(value)
            if new != value:
                bind.execute(rows.update().where(rows.c.id == row_id).values({column: new}))


def upgrade() -> None:
    root, data_dir = _roots()
    _rewrite(lambda value: to_key(value, root, data_dir))


def downgrade() -> None:
    root, _data_dir = _roots()
    absolute = root.absolute()
    _rewrite(lambda value: value if value.startswith("/") else str(absolute / value))
