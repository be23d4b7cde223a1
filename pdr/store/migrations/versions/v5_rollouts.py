"""Training rollouts (``pdr train``): one row per rollout, linked to its run.

Revision ID: v5
Revises: v4

``rollouts`` holds each rollout's experiment, run, update step, mode ("long" or "operator"), the
role of the call whose tokens were trained, the grader's reward and how many completion tokens
entered the objective. A ledger written by a pdr that created tables at start-up may have it.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from pdr.store.migrations.steps import create_index, create_table

revision = "v5"
down_revision = "v4"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add the rollouts table."""
    create_table(
        "rollouts",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("experiment_id", sa.Integer(), sa.ForeignKey("experiments.id"), nullable=False),
        sa.Column("run_id", sa.Integer(), sa.ForeignKey("runs.id"), nullable=False, unique=True),
        sa.Column("step", sa.Integer(), nullable=False),
        sa.Column("mode", sa.String(20), nullable=False),
        sa.Column("role", sa.String(10), nullable=False),
        sa.Column("reward", sa.Float()),
        sa.Column("trained_tokens", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    create_index("ix_rollouts_experiment_id", "rollouts", ["experiment_id"])


def downgrade() -> None:
    """Remove the rollouts table."""
    op.drop_index("ix_rollouts_experiment_id", table_name="rollouts")
    op.drop_table("rollouts")
