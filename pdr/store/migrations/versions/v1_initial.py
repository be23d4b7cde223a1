"""The ledger of the first release: experiments, runs, calls, workspaces and results.

Revision ID: v1
Revises: (none)

The tables as pdr created them before it used Alembic (the release before the "One house" change
and main before "Runs that survive" wrote the same tables): a ledger from then is stamped with
this revision and upgraded from it.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from pdr.store.migrations.steps import create_index, create_table

revision = "v1"
down_revision = None
branch_labels = None
depends_on = None

STAMP = sa.DateTime(timezone=True)


def upgrade() -> None:
    """Create the first release's tables (those the ledger lacks)."""
    create_table(
        "experiments",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False, unique=True),
        sa.Column("config", sa.JSON(), nullable=False),
        sa.Column("created_at", STAMP, nullable=False),
    )
    create_table(
        "runs",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("thread_id", sa.String(100), nullable=False),
        sa.Column("graph", sa.String(20), nullable=False),
        sa.Column("distill", sa.String(40)),
        sa.Column("scorer", sa.String(40)),
        sa.Column("models", sa.JSON(), nullable=False),
        sa.Column("context", sa.JSON(), nullable=False),
        sa.Column("problem", sa.Text(), nullable=False),
        sa.Column("gold", sa.Text()),
        sa.Column("answer", sa.Text()),
        sa.Column("final_text", sa.Text()),
        sa.Column("grade", sa.Boolean()),
        sa.Column("b_seq", sa.Integer()),
        sa.Column("b_tot", sa.Integer()),
        sa.Column("wall_s", sa.Float()),
        sa.Column("status", sa.String(10), nullable=False),
        sa.Column("error", sa.Text()),
        sa.Column("experiment_id", sa.Integer(), sa.ForeignKey("experiments.id")),
        sa.Column("item_id", sa.String(200)),
        sa.Column("seed", sa.Integer(), nullable=False),
        sa.Column("created_at", STAMP, nullable=False),
        sa.Column("finished_at", STAMP),
    )
    create_index("ix_runs_thread_id", "runs", ["thread_id"], unique=True)
    create_index("ix_runs_experiment_id", "runs", ["experiment_id"])
    create_table(
        "calls",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("run_id", sa.Integer(), sa.ForeignKey("runs.id"), nullable=False),
        sa.Column("role", sa.String(10), nullable=False),
        sa.Column("round", sa.Integer(), nullable=False),
        sa.Column("index", sa.Integer(), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("model", sa.String(300), nullable=False),
        sa.Column("input_tokens", sa.Integer(), nullable=False),
        sa.Column("output_tokens", sa.Integer(), nullable=False),
        sa.Column("reasoning_tokens", sa.Integer(), nullable=False),
        sa.Column("cached_tokens", sa.Integer(), nullable=False),
        sa.Column("samples", sa.Integer(), nullable=False),
        sa.Column("sample_output_tokens", sa.JSON()),
        sa.Column("latency_s", sa.Float(), nullable=False),
        sa.Column("estimated", sa.Boolean(), nullable=False),
        sa.Column("error", sa.Text()),
        sa.Column("created_at", STAMP, nullable=False),
    )
    create_index("ix_calls_run_id", "calls", ["run_id"])
    create_table(
        "workspaces",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("run_id", sa.Integer(), sa.ForeignKey("runs.id"), nullable=False),
        sa.Column("round", sa.Integer(), nullable=False),
        sa.Column("index", sa.Integer(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("tokens", sa.Integer(), nullable=False),
        sa.UniqueConstraint("run_id", "round", "index"),
    )
    create_index("ix_workspaces_run_id", "workspaces", ["run_id"])
    create_table(
        "results",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("experiment_id", sa.Integer(), sa.ForeignKey("experiments.id"), nullable=False),
        sa.Column("method", sa.String(20), nullable=False),
        sa.Column("label", sa.String(200), nullable=False),
        sa.Column("seed", sa.Integer(), nullable=False),
        sa.Column("item_id", sa.String(200), nullable=False),
        sa.Column("run_id", sa.Integer(), sa.ForeignKey("runs.id"), nullable=False),
        sa.UniqueConstraint("experiment_id", "label", "item_id", "seed"),
    )
    create_index("ix_results_experiment_id", "results", ["experiment_id"])


def downgrade() -> None:
    """Drop every table (the ledger's whole history)."""
    for table in ("results", "workspaces", "calls", "runs", "experiments"):
        op.drop_table(table)
