"""Alembic's environment for the ledger: migrate the connection ``pdr.store.schema`` hands over.

``pdr.store.schema`` opens the transaction (holding the database's lock) and passes its
connection in ``config.attributes["connection"]``; the revisions run inside that transaction, so
a failed upgrade leaves the ledger as it was.
"""

from __future__ import annotations

from alembic import context

connection = context.config.attributes["connection"]
context.configure(connection=connection)
with context.begin_transaction():
    context.run_migrations()
