"""The three graphs by name: their context types, their builders, and the checks before a run.

The command line, the runner and the evaluation harness name a graph ("pdr", "sr", "long_cot"), a
distill operator and a scorer as text; this module turns those names into a run context and an
uncompiled builder, refusing what cannot run (or would run as something other than it says)
before any model is called.

The names and the context types are all the command line needs to build its options and help, so
this module imports the graph builders, the nodes and the model backends only when a graph is
built or checked: ``pdr --help`` does not load LangGraph or LangChain.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from pdr.graphs.context import (
    MODEL_FIELDS,
    ContextError,
    LongCoTContext,
    PDRContext,
    RunContext,
    SRContext,
    context_fields,
)
from pdr.redact import redact

if TYPE_CHECKING:
    from langgraph.graph import StateGraph

GraphName = Literal["pdr", "sr", "long_cot"]
CONTEXT_TYPES: dict[str, type[RunContext]] = {
    "pdr": PDRContext,
    "sr": SRContext,
    "long_cot": LongCoTContext,
}
GRAPHS: tuple[str, ...] = tuple(CONTEXT_TYPES)
# pdr.nodes.distill.OPERATOR_NAMES and sorted(pdr.nodes.scoring.SCORERS), written out so that the
# command line's help needs no import of the nodes (tests/test_benchmarks.py checks they agree).
DISTILL_NAMES: tuple[str, ...] = ("random_k", "summary", "topk", "topk_per_sample")
SCORER_NAMES: tuple[str, ...] = ("verify", "vote")


def context_type(graph: str) -> type[RunContext]:
    """The run context class of ``graph``; raises ContextError naming the valid graphs."""
    if graph not in CONTEXT_TYPES:
        raise ContextError(f"graph: unknown graph {graph!r}; choose one of {', '.join(GRAPHS)}")
    return CONTEXT_TYPES[graph]


def graphs_taking(field_name: str) -> list[str]:
    """The graphs whose run context has the field ``field_name``."""
    return [name for name in GRAPHS if field_name in context_fields(CONTEXT_TYPES[name])]


def make_context(graph: str, **values: Any) -> RunContext:
    """The run context of ``graph`` from ``values``; None values keep the field's default.

    Raises:
        ContextError: naming the field, for a value the graph cannot use or does not take.
    """
    kind = context_type(graph)
    accepted = context_fields(kind)
    for name, value in values.items():
        if value is not None and name not in accepted:
            raise ContextError(f"{name}: the {graph} graph does not take this parameter")
    return kind(**{name: value for name, value in values.items() if value is not None})


def method_names(
    graph: str, distill: str | None, scorer: str | None
) -> tuple[str | None, str | None]:
    """The (distill, scorer) a run of ``graph`` records: what really runs, None where nothing does.

    Raises:
        ContextError: an operator or scorer for a graph without one, an unknown name, or a scorer
            for an operator that ranks no drafts.
    """
    from pdr.nodes.distill import DEFAULT_SCORER, SCORED_OPERATORS, distiller

    if graph != "pdr":
        for name, value in (("distill", distill), ("scorer", scorer)):
            if value is not None:
                raise ContextError(f"{name}: only the pdr graph distills drafts; drop it")
        return None, None
    chosen = distill or "summary"
    distiller(chosen, scorer)  # raises for unknown names and meaningless pairs
    return chosen, (scorer or DEFAULT_SCORER) if chosen in SCORED_OPERATORS else None


def build_graph(
    graph: str, distill: str | None = None, scorer: str | None = None
) -> StateGraph[Any, Any, Any, Any]:
    """The uncompiled builder of ``graph`` (the distill operator and scorer matter for PDR).

    Raises:
        ContextError: see ``method_names``.
    """
    from pdr.graphs.long_cot import build_long_cot
    from pdr.graphs.pdr import build_pdr
    from pdr.graphs.sr import build_sr
    from pdr.nodes.distill import distiller

    context_type(graph)
    chosen, chosen_scorer = method_names(graph, distill, scorer)
    if graph == "pdr":
        assert chosen is not None
        return build_pdr(distill=distiller(chosen, chosen_scorer))
    if graph == "sr":
        return build_sr()
    return build_long_cot()


def check_models(context: RunContext) -> None:
    """Build the backend of every model the context names, before any call is made.

    Raises:
        ContextError: naming the field whose model spec cannot be used, with the backend's reason.
    """
    from pdr.models import get_backend

    for name in MODEL_FIELDS:
        spec = getattr(context, name)
        if spec is None:
            continue
        try:
            get_backend(spec)
        except Exception as error:
            raise ContextError(f"{name}: {error}") from error


def check_fits(graph: str, context: RunContext, problem: str) -> None:
    """Refuse a problem whose first call cannot fit its model's context window.

    Checked for models that know their window (llama.cpp's ``n_ctx``); the prompt is counted with
    the model's tokenizer, plus the chat template's allowance, plus the output cap.

    Raises:
        ContextError: naming the problem's size, the output cap and the model's window.
    """
    from pdr.calls import estimate_prompt
    from pdr.caps import TEMPLATE_TOKENS_PER_MESSAGE
    from pdr.models import get_backend
    from pdr.nodes.draft import draft_messages
    from pdr.nodes.long_cot import long_cot_messages

    spec = context.model_for("long_cot" if graph == "long_cot" else "draft")
    backend = get_backend(spec)
    window = getattr(backend, "context_window", None)
    if not isinstance(window, int):
        return
    if isinstance(context, LongCoTContext):
        messages = long_cot_messages(problem, context)
    elif isinstance(context, (PDRContext, SRContext)):
        messages = draft_messages(problem, "", context)
    else:
        return
    prompt = estimate_prompt(backend, messages) + TEMPLATE_TOKENS_PER_MESSAGE * len(messages)
    if prompt + context.max_tokens > window:
        raise ContextError(
            f"problem: its prompt takes about {prompt} tokens and max_tokens asks for "
            f"{context.max_tokens} more, but model {redact(spec)!r} holds {window} tokens per "
            f"call (prompt and output); shorten the problem, lower max_tokens, or give the model "
            f"a larger window (llama.cpp models: PDR_N_CTX)"
        )
