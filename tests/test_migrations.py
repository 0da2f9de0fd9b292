"""Migrations bring an empty database of the mode under test to a schema equal to the models."""

from __future__ import annotations

import asyncio
from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy.engine import Connection
from sqlmodel import SQLModel

import server.db.models  # noqa: F401  (registers the tables)
from server.db.engine import make_engine
from server.db.migrate import current_revision, head_revision, upgrade
from tests import stores


def _empty_database(tmp_path: Path) -> str:
    if stores.SCALE_OUT:
        stores.reset_postgres_schema()
        return stores.DATABASE_URL
    return f"sqlite+aiosqlite:///{tmp_path / 'empty.db'}"


def test_upgrade_of_an_empty_database_matches_the_models(tmp_path: Path) -> None:
    url = _empty_database(tmp_path)
    assert asyncio.run(current_revision(url)) is None
    upgrade(url)
    assert asyncio.run(current_revision(url)) == head_revision()
    assert asyncio.run(_differences(url)) == [], "the migrations and the models disagree"
    # Running it again is a no-op, as `run` does at every start.
    upgrade(url)
    assert asyncio.run(current_revision(url)) == head_revision()


async def _differences(url: str) -> list[object]:
    engine = make_engine(url)
    try:
        async with engine.connect() as conn:

            def _diff(sync_conn: Connection) -> list[object]:
                context = MigrationContext.configure(sync_conn, opts={"compare_type": True})
                return list(compare_metadata(context, SQLModel.metadata))

            differences = await conn.run_sync(_diff)
    finally:
        await engine.dispose()
    return differences
