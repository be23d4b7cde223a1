"""Where pdr keeps its files: the run ledger database and the graph checkpoint database.

Both default to files in the per-user data directory (``platformdirs``), side by side but
separate: the ledger is pdr's own record of runs, calls and evaluations; the checkpoint file
belongs to LangGraph. Environment overrides: ``PDR_DATA_DIR`` (the folder), ``PDR_DATABASE_URL``
(any SQLAlchemy URL for the ledger, e.g. PostgreSQL for a team) and ``PDR_CHECKPOINTS`` (the
checkpoint SQLite file, or a ``postgresql://`` URL).

A plain ``postgresql://`` (or ``postgres://``) URL means the same database for both: the ledger
reaches it through SQLAlchemy's psycopg (3) driver, the checkpoints through psycopg itself.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import platformdirs

LEDGER_FILE = "ledger.sqlite"
CHECKPOINT_FILE = "checkpoints.sqlite"
# postgresql://, postgres:// and postgresql+DRIVER:// (the driver part is SQLAlchemy's).
_POSTGRES = re.compile(r"^postgres(?:ql)?(?:\+(?P<driver>[a-z0-9_]+))?://", re.IGNORECASE)


def data_dir() -> Path:
    """The per-user folder for pdr's databases (``PDR_DATA_DIR`` overrides it)."""
    override = os.environ.get("PDR_DATA_DIR")
    return Path(override).expanduser() if override else Path(platformdirs.user_data_dir("pdr"))


def sqlite_url(path: str | Path) -> str:
    """The SQLAlchemy URL of a SQLite file (absolute, so it does not depend on the cwd)."""
    return f"sqlite:///{Path(path).expanduser().resolve()}"


def database_url(value: str | Path | None = None) -> str:
    """The ledger's SQLAlchemy URL.

    Args:
        value: a URL (``postgresql+psycopg://...``, ``sqlite:///...``) or a file path (taken as
            SQLite); None reads ``PDR_DATABASE_URL``, else a SQLite file in ``data_dir()``.
    """
    chosen = str(value) if value else os.environ.get("PDR_DATABASE_URL")
    if not chosen:
        return sqlite_url(data_dir() / LEDGER_FILE)
    found = _POSTGRES.match(chosen)
    if found and not found["driver"]:
        return _POSTGRES.sub("postgresql+psycopg://", chosen, count=1)
    return chosen if "://" in chosen else sqlite_url(chosen)


def is_postgres(location: str | Path) -> bool:
    """Whether ``location`` is a PostgreSQL URL (rather than a file path)."""
    return bool(_POSTGRES.match(str(location)))


def postgres_conninfo(url: str) -> str:
    """A PostgreSQL URL as libpq (psycopg) reads it: ``postgresql://`` without a driver part."""
    return _POSTGRES.sub("postgresql://", url, count=1)


def checkpoints_path(value: str | Path | None = None) -> Path:
    """The LangGraph checkpoint SQLite file (``PDR_CHECKPOINTS``, else one in ``data_dir()``)."""
    chosen = value or os.environ.get("PDR_CHECKPOINTS")
    return Path(chosen).expanduser() if chosen else data_dir() / CHECKPOINT_FILE


def checkpoints_location(value: str | Path | None = None) -> str | Path:
    """Where checkpoints go: a ``postgresql://`` URL as given, else the SQLite file's path.

    ``value``, else ``PDR_CHECKPOINTS``, else ``checkpoints.sqlite`` in ``data_dir()``.
    """
    chosen = value or os.environ.get("PDR_CHECKPOINTS")
    if chosen and is_postgres(chosen):
        return postgres_conninfo(str(chosen))
    return checkpoints_path(chosen)
