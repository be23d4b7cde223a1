"""Parallel-Distill-Refine: rounds of parallel drafts, each distilled into a bounded workspace."""

from __future__ import annotations

from typing import TypeVar

from langgraph.graph import END, START, StateGraph

from pdr.aio import SYNC_FAN_OUT, node
from pdr.graphs.context import PDRContext, RefineContext
from pdr.graphs.state import DraftTask, InputState, OutputState, State, VerifyTask
from pdr.nodes.distill import Distiller, distill_step, summary, verifies
from pdr.nodes.draft import draft
from pdr.nodes.draft_batch import DraftBatchTask, draft_batch
from pdr.nodes.refine import after_final, refine
from pdr.nodes.rounds import round_router
from pdr.nodes.start import start
from pdr.nodes.verify import verify_draft

ContextT = TypeVar("ContextT", bound=RefineContext)


def build_pdr(
    distill: Distiller = summary, *, batch_drafts: bool = False
) -> StateGraph[State, PDRContext, InputState, OutputState]:
    """The uncompiled PDR graph.

    ``distill`` is the operator that turns a round's drafts into the next workspace: ``summary``
    (default), ``topk()``, ``topk(scorer="verify")``, ``topk_per_sample()``, ``random_k`` or your
    own async ``(state, runtime) -> {"workspaces": [...]}`` function. The node is always named
    "distill", so checkpoints and Studio see the same graph whichever operator runs.

    ``batch_drafts=True`` asks for the drafts of a round that share a workspace in one n-sample
    request (``pdr.nodes.draft_batch``), for backends that support it (OpenAI, vLLM).
    """
    return build_rounds(PDRContext, distill, batch_drafts=batch_drafts)


def build_rounds(
    context_schema: type[ContextT], distill: Distiller, *, batch_drafts: bool = False
) -> StateGraph[State, ContextT, InputState, OutputState]:
    """The round loop shared by PDR and SR: start, fan out drafts, distill, loop or refine.

    A distill operator that ranks drafts with the verify scorer adds the verify stage: one
    ``verify`` branch per draft between the drafts and the distillation.
    """
    builder = StateGraph(
        State, context_schema=context_schema, input_schema=InputState, output_schema=OutputState
    )
    grading = verifies(distill)
    builder.add_node("start", node(start))
    if batch_drafts:
        builder.add_node("draft", node(draft_batch), input_schema=DraftBatchTask)
    else:
        builder.add_node("draft", node(draft), input_schema=DraftTask)
    targets = ["draft", "refine", "distill"]
    if grading:
        builder.add_node("verify", node(verify_draft), input_schema=VerifyTask)
        builder.add_edge("verify", "distill")
        targets.append("verify")
    route = round_router(verifies=grading, batched=batch_drafts)
    builder.add_node("distill", node(distill_step(distill)))
    builder.add_node("refine", node(refine))
    builder.add_edge(START, "start")
    builder.add_conditional_edges("start", route, targets)
    builder.add_edge("draft", "distill")
    builder.add_conditional_edges("distill", route, targets)
    builder.add_conditional_edges("refine", after_final("refine"), ["refine", END])
    return builder


graph = build_pdr().compile(name="pdr").with_config(SYNC_FAN_OUT)
