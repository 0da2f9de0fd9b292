"""Case-insensitive matching of words in stored text, the same on both databases.

SQLite's ``lower()`` and ``LIKE`` fold ASCII only, so "пожар" would not find "Пожар" and "łódź"
not "ŁÓDŹ": on SQLite every connection gets a function of ours that folds as Python does
(registered by ``engine.make_engine``). PostgreSQL's ``lower()`` folds Unicode under the
database's ctype (C.UTF-8, as the deployment's is made, or any UTF-8 locale).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, func

SQLITE_FOLD_FUNCTION = "lifeline_lower"


def fold(text: str | None) -> str | None:
    """What the SQLite function does: Python's own lower case (search words are lowered alike)."""
    return text.lower() if text is not None else None


def folded(column: Any, *, postgres: bool) -> ColumnElement[str]:
    """``column`` in lower case, as the database at hand can fold it."""
    if postgres:
        return func.lower(column)
    return getattr(func, SQLITE_FOLD_FUNCTION)(column)
