"""Past one machine: the experiments' work queue, where a call was served, wider model specs.

Revision ID: v3
Revises: v2

``items`` (an experiment's problems, so a worker joins without the dataset file), ``cells`` (the
work queue evaluation workers claim from), the experiment's checkpoint location, host and lease
time-out, ``calls.replica`` (the base URL that served the call) and ``calls.model`` as TEXT (a spec
naming several replicas outgrows 300 characters on PostgreSQL).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from pdr.store.migrations.steps import add_columns, create_index, create_table, widen

revision = "v3"
down_revision = "v2"
branch_labels = None
depends_on = None

STAMP = sa.DateTime(timezone=True)


def upgrade() -> None:
    """Add the work queue, the replica column and the experiments' worker settings."""
    widen("calls", "model", sa.Text(), before=sa.String(300))
    add_columns("calls", sa.Column("replica", sa.Text()))
    add_columns(
        "experiments",
        sa.Column("checkpoints", sa.Text()),
        sa.Column("host", sa.String(255)),
        sa.Column("lease_timeout_s", sa.Float()),
    )
    create_table(
        "items",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("experiment_id", sa.Integer(), sa.ForeignKey("experiments.id"), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("item_id", sa.String(200), nullable=False),
        sa.Column("problem", sa.Text(), nullable=False),
        sa.Column("answer", sa.Text(), nullable=False),
        sa.Column("level", sa.Integer()),
        sa.UniqueConstraint("experiment_id", "item_id"),
    )
    create_index("ix_items_experiment_id", "items", ["experiment_id"])
    create_table(
        "cells",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("experiment_id", sa.Integer(), sa.ForeignKey("experiments.id"), nullable=False),
        sa.Column("phase", sa.String(20), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("method", sa.String(20), nullable=False),
        sa.Column("label", sa.String(200), nullable=False),
        sa.Column("item_id", sa.String(200), nullable=False),
        sa.Column("seed", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(10), nullable=False),
        sa.Column("thread_id", sa.String(100)),
        sa.Column("worker", sa.String(64)),
        sa.Column("host", sa.String(255)),
        sa.Column("pid", sa.Integer()),
        sa.Column("claimed_at", STAMP),
        sa.Column("heartbeat_at", STAMP),
        sa.Column("finished_at", STAMP),
        sa.Column("claims", sa.Integer(), nullable=False),
        sa.UniqueConstraint("experiment_id", "label", "item_id", "seed"),
    )
    create_index("ix_cells_queue", "cells", ["experiment_id", "state", "position"])


def downgrade() -> None:
    """Remove this revision's tables and columns."""
    op.drop_table("cells")
    op.drop_table("items")
    for column in ("checkpoints", "host", "lease_timeout_s"):
        op.drop_column("experiments", column)
    op.drop_column("calls", "replica")
