"""Alembic, driven from code: ``python -m server migrate`` and the app's start-up use this."""

from __future__ import annotations

import asyncio
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection

from server.db.engine import make_engine

MIGRATIONS_DIR = Path(__file__).with_name("migrations")


# What a migration of stored files' rows needs to know (0008: paths to keys), in
# ``Config.attributes``; without them it reads the settings from the environment.
STORAGE_DIR_ATTRIBUTE = "storage_dir"
DATA_DIR_ATTRIBUTE = "data_dir"


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def _with_files(url: str, storage_dir: Path | None, data_dir: Path | None) -> Config:
    config = alembic_config(url)
    if storage_dir is not None and data_dir is not None:
        config.attributes[STORAGE_DIR_ATTRIBUTE] = storage_dir
        config.attributes[DATA_DIR_ATTRIBUTE] = data_dir
    return config


def upgrade(
    url: str,
    revision: str = "head",
    *,
    storage_dir: Path | None = None,
    data_dir: Path | None = None,
) -> None:
    """Bring the database at ``url`` to ``revision``; runs its own event loop (env.py).
    ``storage_dir`` and ``data_dir``: the node's, for the rows that name stored files."""
    command.upgrade(_with_files(url, storage_dir, data_dir), revision)


def downgrade(
    url: str, revision: str, *, storage_dir: Path | None = None, data_dir: Path | None = None
) -> None:
    """Back to ``revision`` (what a test of a migration's way down runs)."""
    command.downgrade(_with_files(url, storage_dir, data_dir), revision)


async def current_revision(url: str) -> str | None:
    engine = make_engine(url)
    try:
        async with engine.connect() as conn:

            def _rev(sync_conn: Connection) -> str | None:
                return MigrationContext.configure(sync_conn).get_current_revision()

            return await conn.run_sync(_rev)
    finally:
        await engine.dispose()


def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()


async def upgrade_async(url: str) -> None:
    """Run the migrations from inside a running loop (in a thread: env.py runs its own loop)."""
    await asyncio.to_thread(upgrade, url)
