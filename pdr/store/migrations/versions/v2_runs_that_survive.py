"""Runs that survive: leases, checkpoint file per run, attempts stored as they start, repeats.

Revision ID: v2
Revises: v1

``runs.status`` widened to 20 characters ('budget_exhausted', 'interrupted' do not fit in 10 on
PostgreSQL), ``runs.checkpoints``, ``calls.attempt_id`` (indexed), ``calls.truncated``,
``calls.repeat`` and the ``leases`` table.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from pdr.store.migrations.steps import add_columns, create_index, create_table, widen

revision = "v2"
down_revision = "v1"
branch_labels = None
depends_on = None

STAMP = sa.DateTime(timezone=True)


def upgrade() -> None:
    """Add what pdr needs to survive kills: leases, attempt ids, repeat marks."""
    widen("runs", "status", sa.String(20), before=sa.String(10))
    add_columns("runs", sa.Column("checkpoints", sa.Text()))
    add_columns(
        "calls",
        sa.Column("attempt_id", sa.String(32)),
        sa.Column("truncated", sa.Boolean()),
        sa.Column("repeat", sa.Boolean()),
    )
    create_index("ix_calls_attempt_id", "calls", ["attempt_id"])
    create_table(
        "leases",
        sa.Column("thread_id", sa.String(100), primary_key=True),
        sa.Column("holder", sa.String(64), nullable=False),
        sa.Column("host", sa.String(255), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("acquired_at", STAMP, nullable=False),
        sa.Column("heartbeat_at", STAMP, nullable=False),
    )


def downgrade() -> None:
    """Remove this revision's table and columns."""
    op.drop_table("leases")
    op.drop_index("ix_calls_attempt_id", "calls")
    for column in ("attempt_id", "truncated", "repeat"):
        op.drop_column("calls", column)
    op.drop_column("runs", "checkpoints")
