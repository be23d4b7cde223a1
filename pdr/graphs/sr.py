"""Sequential Refine: one answer, improved round after round with itself as the workspace."""

from __future__ import annotations

from langgraph.graph import StateGraph

from pdr.aio import SYNC_FAN_OUT
from pdr.graphs.context import SRContext
from pdr.graphs.pdr import build_rounds
from pdr.graphs.state import InputState, OutputState, State
from pdr.nodes.distill import previous_answer


def build_sr() -> StateGraph[State, SRContext, InputState, OutputState]:
    """The uncompiled SR graph.

    PDR's round loop with one draft per round and the previous answer (bounded by kappa) as the
    workspace; ``rounds`` in the context sets its length.
    """
    return build_rounds(SRContext, previous_answer)


graph = build_sr().compile(name="sr").with_config(SYNC_FAN_OUT)
