"""Distill operators: turn a round's drafts into the next round's bounded workspace(s).

Each operator is a node ``(state, runtime) -> {"workspaces": [...], "calls": [...]}``. The graph
builder wraps whichever one it is given with ``distill_step``, which bounds every workspace to kappa
tokens, clears the round's drafts and advances the round, so a user-written operator only has to
choose what goes into the workspace.
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable
from dataclasses import replace
from functools import wraps
from typing import Any

from langgraph.runtime import Runtime

from pdr.calls import BudgetExhaustedError, CallFailedError, call_model, sampling_for
from pdr.events import ROUND_STARTED, WORKSPACE_WRITTEN, emit
from pdr.graphs.context import ContextError, PDRContext, RefineContext
from pdr.graphs.state import Draft, State
from pdr.models import Message, get_backend
from pdr.nodes.halts import failed, stopped
from pdr.nodes.rounds import hold_round, round_drafts
from pdr.nodes.routing import allowance
from pdr.nodes.scoring import SCORERS, Scorer, verify, vote
from pdr.nodes.workspace import bound_text, bound_workspace, count_tokens, excerpt
from pdr.prompts import distill as prompts

Distiller = Callable[[State, Runtime[Any]], Awaitable[dict[str, Any]]]

__all__ = ["Distiller", "distill_step", "distiller", "round_drafts", "summary", "topk"]


class ScoredDistiller:
    """A distill operator that ranks the drafts with a scorer (the top-k operators).

    ``verifies`` tells the graph builder to add the verify stage (the ``verify`` scorer reads the
    grades it writes).
    """

    def __init__(self, function: Distiller, scorer: Scorer) -> None:
        """Wrap ``function`` (the operator) ranking with ``scorer``."""
        self.function = function
        self.scorer = scorer
        self.__name__ = function.__name__

    @property
    def verifies(self) -> bool:
        """True when the scorer is the model's own grading (the verify stage)."""
        return self.scorer is verify

    async def __call__(self, state: State, runtime: Runtime[Any]) -> dict[str, Any]:
        """Run the operator."""
        return await self.function(state, runtime)


def verifies(operator: Distiller) -> bool:
    """True when ``operator`` needs the verify stage before it runs."""
    return bool(getattr(operator, "verifies", False))


def next_round_size(state: State, context: RefineContext) -> int:
    """Drafts in the next round (1 when the next round is the refine step)."""
    return context.round_sizes()[state["round"]]


def summary_messages(problem: str, drafts: list[Draft], context: PDRContext) -> list[Message]:
    """The summary prompt: every draft (within distill_input_tokens) and the kappa bound."""
    shown = "\n\n".join(
        prompts.DRAFT_IN_SUMMARY.format(number=i + 1, text=excerpt(d["text"], context, len(drafts)))
        for i, d in enumerate(drafts)
    )
    user = prompts.SUMMARY.format(problem=problem, drafts=shown, kappa=context.kappa)
    return [
        {"role": "system", "content": context.summary_system_prompt},
        {"role": "user", "content": user},
    ]


def summary_thinks(context: PDRContext) -> bool:
    """Whether the summary model thinks before it writes (and so needs room for it in its cap).

    ``thinking_budget`` 0 turns thinking off; ``reasoning_effort`` or another budget turns it on;
    otherwise the backend says (``thinks``: OpenAI o-series and gpt-5, Gemini 2.5 and later).
    """
    if context.thinking_budget == 0:
        return False
    if context.reasoning_effort is not None or context.thinking_budget is not None:
        return True
    return bool(getattr(get_backend(context.model_for("distill")), "thinks", False))


def summary_cap(context: PDRContext) -> int:
    """The summary call's output cap: kappa for the summary plus room for thinking.

    The visible summary is cut to kappa afterwards (``distill_step``), so the room only lets a
    thinking model finish its thinking instead of spending kappa on it and writing nothing.
    """
    thinking = context.summary_thinking_tokens
    if thinking is None:
        thinking = context.max_tokens if summary_thinks(context) else 0
    return context.kappa + thinking


async def summary(state: State, runtime: Runtime[PDRContext]) -> dict[str, Any]:
    """One model call writes a global summary of the drafts, cut to kappa tokens."""
    context = runtime.context
    drafts = round_drafts(state)
    messages = summary_messages(state["problem"], drafts, context)
    options = sampling_for(context, "distill", state["round"], 0, messages=messages)
    result = await call_model(
        context,
        role="distill",
        round_=state["round"],
        index=0,
        messages=messages,
        options=replace(options, max_tokens=summary_cap(context)),
        allowance=allowance(context, state.get("calls") or [], 1),
    )
    return {"workspaces": [result.text], "calls": result.records}


def candidates_workspace(chosen: list[Draft], context: RefineContext) -> str:
    """Drafts laid out as numbered candidates, each cut to its share of kappa (label kept)."""
    if not chosen:
        return ""
    share = max(1, context.kappa // len(chosen) - 1)  # 1 for the blank line between them
    return "\n\n".join(
        bound_text(item["text"], share, context, prompts.CANDIDATE.format(number=number, text=""))
        for number, item in enumerate(chosen, start=1)
    )


def best_k(drafts: list[Draft], scores: list[float], k: int) -> list[Draft]:
    """The k highest-scoring drafts (ties keep draft order)."""
    ranked = sorted(range(len(drafts)), key=lambda i: (-scores[i], i))
    return [drafts[i] for i in ranked[:k]]


def topk(scorer: Scorer | str = vote) -> ScoredDistiller:
    """Top-k shared: the k best drafts (by ``scorer``) form one workspace for every next draft."""
    score = SCORERS[scorer] if isinstance(scorer, str) else scorer

    async def topk_distill(state: State, runtime: Runtime[PDRContext]) -> dict[str, Any]:
        context = runtime.context
        drafts = round_drafts(state)
        scores, records = await score(state["problem"], drafts, context)
        chosen = best_k(drafts, scores, context.k)
        return {"workspaces": [candidates_workspace(chosen, context)], "calls": records}

    return ScoredDistiller(topk_distill, score)


def workspace_rng(state: State, context: RefineContext, sample: int, kind: str) -> random.Random:
    """The random source of next-round draft ``sample``'s workspace.

    Seeded by (seed, problem, round, sample, operator): a resumed run builds the same
    workspaces, and different problems get unrelated picks.
    """
    return random.Random(f"{context.seed}:{state['problem']}:{state['round']}:{sample}:{kind}")


def topk_per_sample(scorer: Scorer | str = vote) -> ScoredDistiller:
    """Per-sample top-k: next draft j gets the k best of its own bootstrap resample of the drafts.

    Scores are computed once (the verify calls are not repeated per sample); the resample is
    seeded by (seed, problem, round, j), so a resumed run builds the same workspaces.
    """
    score = SCORERS[scorer] if isinstance(scorer, str) else scorer

    async def topk_per_sample_distill(state: State, runtime: Runtime[PDRContext]) -> dict[str, Any]:
        context = runtime.context
        drafts = round_drafts(state)
        scores, records = await score(state["problem"], drafts, context)
        workspaces = []
        for sample in range(next_round_size(state, context)):
            rng = workspace_rng(state, context, sample, "topk")
            picks = sorted({rng.randrange(len(drafts)) for _ in drafts})
            chosen = best_k([drafts[i] for i in picks], [scores[i] for i in picks], context.k)
            workspaces.append(candidates_workspace(chosen, context))
        return {"workspaces": workspaces, "calls": records}

    return ScoredDistiller(topk_per_sample_distill, score)


async def random_k(state: State, runtime: Runtime[PDRContext]) -> dict[str, Any]:
    """Bootstrapped workspaces: next draft j gets k drafts sampled at random (seeded), no calls."""
    context = runtime.context
    drafts = round_drafts(state)
    workspaces = []
    for sample in range(next_round_size(state, context)):
        rng = workspace_rng(state, context, sample, "random")
        chosen = rng.sample(drafts, min(context.k, len(drafts)))
        workspaces.append(candidates_workspace(chosen, context))
    return {"workspaces": workspaces, "calls": []}


async def previous_answer(state: State, runtime: Runtime[RefineContext]) -> dict[str, Any]:
    """Sequential Refine's workspace: the previous answer itself, cut to kappa.

    A cut keeps the "Your previous solution:" label and the end of the solution (its answer),
    with the elision mark between them.
    """
    drafts = round_drafts(state)
    text = drafts[-1]["text"] if drafts else ""
    label = prompts.PREVIOUS_ANSWER.format(text="")
    return {"workspaces": [bound_text(text, runtime.context.kappa, runtime.context, label)]}


# What a distill operator may return; anything else (a rewritten problem, say) would bypass kappa.
OPERATOR_KEYS = ("workspaces", "calls")


def distill_step(operator: Distiller) -> Distiller:
    """Wrap a distill operator into the graph's ``distill`` node.

    The wrapper refuses any key but ``workspaces`` and ``calls`` in the operator's update, bounds
    every workspace to kappa tokens of the refine model's tokenizer, checks that there is one
    shared workspace or one per next-round draft and that none is empty, clears the drafts of the
    round and moves the run to the next round. Before that it joins the round's stages
    (``pdr.nodes.rounds.hold_round``): failed branches pause the run, a stopped run or drafts
    awaiting their grades hold the round. A failed call of the operator pauses the run at this
    step; a call the caps refuse stops the run.
    """
    grades = verifies(operator)

    @wraps(operator)
    async def distill(state: State, runtime: Runtime[RefineContext]) -> dict[str, Any]:
        context = runtime.context
        joined, hold = hold_round(state, context, grades)
        if hold:
            return joined
        try:
            update = await operator(state, runtime)
        except BudgetExhaustedError as error:
            return {**joined, **stopped(error)}
        except CallFailedError as error:
            return {**joined, **failed("distill", {}, "distill", state["round"], 0, error)}
        name = operator.__name__
        for key in update:
            if key not in OPERATOR_KEYS:
                raise ValueError(
                    f"distill operator {name!r} returned the key {key!r}; an operator returns "
                    f"only {' and '.join(map(repr, OPERATOR_KEYS))} (the problem, the round and "
                    "the drafts are the graph's)"
                )
        workspaces = [bound_workspace(text, context) for text in update.get("workspaces", [])]
        wanted = next_round_size(state, context)
        if len(workspaces) not in (1, wanted):
            raise ValueError(
                f"distill operator {name!r} returned {len(workspaces)} workspaces; "
                f"return 1 (shared) or {wanted} (one per next-round draft)"
            )
        empty = [i for i, text in enumerate(workspaces) if not text.strip()]
        if empty:
            raise ValueError(
                f"distill operator {name!r} wrote an empty workspace (number {empty[0]}) after "
                f"round {state['round']}; the next round would start from nothing"
            )
        next_round = state["round"] + 1
        emit(
            WORKSPACE_WRITTEN,
            round=state["round"],
            texts=workspaces,
            tokens=[count_tokens(text, context) for text in workspaces],
        )
        sizes = context.round_sizes()
        if next_round < len(sizes):
            emit(
                ROUND_STARTED,
                round=next_round,
                drafts=sizes[next_round - 1],
                rounds=len(sizes),
                max_concurrency=context.max_concurrency,
            )
        return {
            **joined,
            "workspaces": workspaces,
            "calls": update.get("calls", []),
            "drafts": None,
            "scores": None,
            "round_answers": [draft["answer"] for draft in round_drafts(state)],
            "round": next_round,
        }

    return distill


SCORED_OPERATORS: dict[str, Callable[[str], ScoredDistiller]] = {
    "topk": topk,
    "topk_per_sample": topk_per_sample,
}
PLAIN_OPERATORS: dict[str, Distiller] = {"summary": summary, "random_k": random_k}
OPERATOR_NAMES: tuple[str, ...] = tuple(sorted([*SCORED_OPERATORS, *PLAIN_OPERATORS]))
DEFAULT_SCORER = "vote"


def distiller(name: str, scorer: str | None = None) -> Distiller:
    """A distill operator by name (for the command line and the evaluation harness).

    ``scorer`` ranks the drafts of the top-k operators (default vote); the other operators rank
    nothing, and naming a scorer for them is refused rather than recorded as if it had run.

    Raises:
        ContextError: an unknown operator or scorer, or a scorer for an operator without one.
    """
    if name in PLAIN_OPERATORS:
        if scorer is not None:
            raise ContextError(
                f"scorer: the {name} operator ranks no drafts, so it takes no scorer; drop the "
                f"scorer, or use {' or '.join(SCORED_OPERATORS)}"
            )
        return PLAIN_OPERATORS[name]
    if name not in SCORED_OPERATORS:
        raise ContextError(
            f"distill: unknown operator {name!r}; choose one of {', '.join(OPERATOR_NAMES)}"
        )
    chosen = DEFAULT_SCORER if scorer is None else scorer
    if chosen not in SCORERS:
        raise ContextError(
            f"scorer: unknown scorer {chosen!r}; choose one of {', '.join(sorted(SCORERS))}"
        )
    return SCORED_OPERATORS[name](chosen)
