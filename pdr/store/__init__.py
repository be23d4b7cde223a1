"""Persistence: graph checkpoints in SQLite and the run ledger."""
