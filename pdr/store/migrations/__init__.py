"""The ledger's schema history as Alembic revisions (``versions/``).

``pdr.store.schema`` applies them.

A new change to the ledger's tables is a new revision file in ``versions/`` whose
``down_revision`` is the current head, and the models in ``pdr.store.ledger_models`` changed to
match (``tests/test_schema.py`` compares the two on SQLite and PostgreSQL). Revisions use the
idempotent steps of ``pdr.store.migrations.steps``, because ledgers written before pdr used
Alembic may already hold part of a revision (the columns the older start-up step added).
"""
