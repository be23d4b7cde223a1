"""What each call wrote: texts, extracted answers, whether a failed attempt reached the model.

Revision ID: v4
Revises: v3

``calls.texts`` (one text per sample) and ``calls.answers`` (the final answer extracted from each),
``calls.reached_model`` (a failed attempt whose request got to the model: its prompt counts),
``calls.injected`` (a candidate planted among the drafts, no model call),
``calls.sample_output_estimated`` (an n-sample call's per-sample outputs split by the tokenizer)
and ``runs.b_tot_per_draft`` (B_tot with every draft billed as its own call). A ledger written by
a pdr between the start-up column step and this revision may have some of them already.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from pdr.store.migrations.steps import add_columns

revision = "v4"
down_revision = "v3"
branch_labels = None
depends_on = None

CALL_COLUMNS = ("sample_output_estimated", "reached_model", "texts", "answers", "injected")


def upgrade() -> None:
    """Add the calls' texts, answers and flags, and the runs' per-draft B_tot."""
    add_columns(
        "calls",
        sa.Column("sample_output_estimated", sa.Boolean()),
        sa.Column("reached_model", sa.Boolean()),
        sa.Column("texts", sa.JSON()),
        sa.Column("answers", sa.JSON()),
        sa.Column("injected", sa.Boolean()),
    )
    add_columns("runs", sa.Column("b_tot_per_draft", sa.Integer()))


def downgrade() -> None:
    """Remove this revision's columns."""
    for column in CALL_COLUMNS:
        op.drop_column("calls", column)
    op.drop_column("runs", "b_tot_per_draft")
