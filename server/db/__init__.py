"""Persistence: sqlmodel tables, one async engine per app, alembic migrations."""
