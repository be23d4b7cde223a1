"""Alembic revision files of the ledger (v1: the first release; one file per later change)."""
