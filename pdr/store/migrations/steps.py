"""Idempotent schema steps for the revisions: add what is missing, leave what is there.

Ledgers written before pdr used Alembic were brought up to date by a start-up step that added
missing columns, so such a ledger may already hold some of a revision's columns; a revision made
of these steps applies to it as well as to a ledger that has none of them.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op


def _inspector() -> Any:
    return sa.inspect(op.get_bind())


def has_table(name: str) -> bool:
    """Whether the ledger has the table ``name``."""
    return bool(_inspector().has_table(name))


def create_table(name: str, *parts: Any) -> None:
    """Create the table unless the ledger has it."""
    if not has_table(name):
        op.create_table(name, *parts)


def add_columns(table: str, *columns: sa.Column[Any]) -> None:
    """Add each column the table lacks (new columns are nullable: old rows read NULL)."""
    present = {column["name"] for column in _inspector().get_columns(table)}
    for column in columns:
        if column.name not in present:
            op.add_column(table, column)


def create_index(name: str, table: str, columns: list[str], unique: bool = False) -> None:
    """Create the index unless the table has one of that name."""
    present = {index["name"] for index in _inspector().get_indexes(table)}
    if name not in present:
        op.create_index(name, table, columns, unique=unique)


def widen(table: str, column: str, kind: sa.types.TypeEngine[Any], before: Any) -> None:
    """Change a column's type where the database enforces it.

    SQLite does not enforce VARCHAR lengths (a column's affinity is TEXT), so its tables are left
    as they are rather than copied into new ones; PostgreSQL's are altered in place.
    """
    if op.get_bind().dialect.name != "sqlite":
        op.alter_column(table, column, type_=kind, existing_type=before)
