"""Rollouts from the graphs users run, as TRL's ``rollout_func``.

A long-trace rollout is a run of the ``long_cot`` graph; an operator rollout is a run of the
``pdr`` graph with one round (schedule ``[M, 1]``: M drafts from the policy, the distill operator,
the refine step) under the short contexts of the run context. Both go through ``pdr.runner`` like
any run, so every call, workspace and grade is in the ledger; the reward is the grader's verdict on
the final answer (1 correct, 0 not). The policy backend keeps token ids and log-probabilities
(``Generation.sampled``), which reach this module as ``tokens_sampled`` events.

What is trained: the one call whose output is graded. For a long-trace rollout that is the long
chain-of-thought call; for an operator rollout it is the refine call, conditioned on the problem
and the workspace the round distilled: the improvement-operator skill. The drafts of the one round
are not trained: with R = 1 they read the problem alone, the context the long-trace half already
trains, so training them too would tilt the 50/50 mixture towards long-trace contexts; they are
still in the ledger with their tokens.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pdr.evaluation.configs import Config, shared_values
from pdr.evaluation.grading import grade_answer
from pdr.events import TOKENS_SAMPLED
from pdr.graphs.catalog import make_context
from pdr.graphs.context import RunContext
from pdr.models import SampledTokens
from pdr.runner import run_problem
from pdr.store.ledger import FINISHED, Ledger
from pdr.store.rollouts import record_rollout
from pdr.training.mixture import Mode, ScheduledProblem
from pdr.training.settings import TrainSettings

TRAINED_ROLE: dict[Mode, str] = {"long": "long_cot", "operator": "refine"}
GRAPH: dict[Mode, str] = {"long": "long_cot", "operator": "pdr"}


@dataclass(frozen=True)
class Rollout:
    """One finished rollout.

    Attributes:
        scheduled: the problem and mode it was made for.
        member: its place in the group of rollouts of the problem.
        thread_id: its run in the ledger.
        reward: 1.0 or 0.0 from the grader; None when the run failed (nothing is trained).
        trained: the trained call's prompt, completion and log-probabilities (None if it failed).
    """

    scheduled: ScheduledProblem
    member: int
    thread_id: str
    reward: float | None
    trained: SampledTokens | None


def mode_config(mode: Mode, settings: TrainSettings) -> Config:
    """The configuration of a mode's rollouts, as the evaluation reports label it."""
    if mode == "long":
        return Config("long_cot", {"max_tokens": settings.max_tokens})
    return Config(
        "pdr",
        {
            "schedule": [settings.drafts, 1],
            "max_tokens": settings.max_tokens,
            "kappa": settings.kappa,
            "k": settings.k,
            "distill": settings.distill,
        },
    )


def rollout_seed(settings: TrainSettings, scheduled: ScheduledProblem, member: int) -> int:
    """A run-context seed distinct for every rollout of a training (its calls' seeds follow)."""
    return ((settings.seed * 100_000 + scheduled.step) * 1_000 + scheduled.slot) * 1_000 + member


class Rollouts:
    """TRL's ``rollout_func``: runs the rollouts of the prompts it is given, returns their tokens.

    Args:
        settings: the training's settings.
        schedule: the mixture (``pdr.training.mixture``); TRL's prompts are its keys.
        policy: the model spec of the policy backend (registered with ``keep_tokens=True``).
        ledger: where the runs, their results and the rollout rows go.
        experiment_id: the training's experiment in the ledger.
        checkpoints: a folder for the rollout runs' LangGraph checkpoints: one SQLite file per
            run (a step's runs all write at once; one shared file would make them wait on its
            lock), deleted when the run ends (a rollout is never resumed).
        pad_token: the token a failed rollout's one masked-out placeholder token uses.
    """

    def __init__(
        self,
        settings: TrainSettings,
        schedule: list[ScheduledProblem],
        *,
        policy: str,
        ledger: Ledger,
        experiment_id: int,
        checkpoints: Path,
        pad_token: int,
    ) -> None:
        """Index the schedule by key."""
        self.settings = settings
        self.by_key = {row.key: row for row in schedule}
        self.policy = policy
        self.ledger = ledger
        self.experiment_id = experiment_id
        self.checkpoints = checkpoints
        self.pad_token = pad_token
        self.batches: list[list[Rollout]] = []

    def __call__(self, prompts: list[str], trainer: Any = None) -> dict[str, list[Any]]:
        """Run one generation batch; the fields TRL needs, plus the rewards and modes.

        Raises:
            RuntimeError: the batch is not one update's problems, half in each mode (TRL fed
                the schedule in another order than the mixture was built for).
        """
        if trainer is not None:
            self.check_batch(prompts, int(trainer.state.global_step) + 1, trainer)
        rollouts = asyncio.run(self.run_batch(prompts))
        self.batches.append(rollouts)
        return self.pack(rollouts)

    def check_batch(self, prompts: list[str], update: int, trainer: Any) -> None:
        """Refuse a generation batch that is not update ``update``'s, half of each mode."""
        rows = [self.by_key[key] for key in prompts if key in self.by_key]
        steps = sorted({row.step for row in rows})
        if len(rows) != len(prompts) or steps != [update]:
            raise RuntimeError(
                f"update {update} got rollouts of updates {steps}: the trainer did not read the "
                f"mixture in order (shuffle_dataset must be False)"
            )
        modes = Counter(row.mode for row in rows)
        if trainer.accelerator.num_processes == 1 and modes["long"] != modes["operator"]:
            raise RuntimeError(f"update {update} is not half long-trace, half operator: {modes}")

    async def run_batch(self, prompts: list[str]) -> list[Rollout]:
        """Every rollout of the batch at once (the policy backend batches their calls)."""
        unknown = [key for key in prompts if key not in self.by_key]
        if unknown:
            raise ValueError(f"prompts that are not in the schedule: {unknown[:3]}")
        seen: Counter[str] = Counter()
        jobs = []
        for key in prompts:
            jobs.append(self.run_one(self.by_key[key], seen[key]))
            seen[key] += 1
        return list(await asyncio.gather(*jobs))

    def context(self, scheduled: ScheduledProblem, member: int) -> RunContext:
        """The run context of one rollout: the policy, the mode's configuration, its own seed."""
        config = mode_config(scheduled.mode, self.settings)
        return make_context(
            config.method,
            **shared_values(config.method, self.settings.context),
            model=self.policy,
            temperature=self.settings.temperature,
            seed=rollout_seed(self.settings, scheduled, member),
            max_concurrency=self.settings.max_concurrency,
            max_retries=0,
            **config.context_values(),
        )

    async def run_one(self, scheduled: ScheduledProblem, member: int) -> Rollout:
        """One rollout through the runner, graded, recorded as a result and a rollout row."""
        mode = scheduled.mode
        role = TRAINED_ROLE[mode]
        config = mode_config(mode, self.settings)
        sampled: list[SampledTokens] = []

        def keep(event: dict[str, Any]) -> None:
            if event.get("event") == TOKENS_SAMPLED and event.get("role") == role:
                sampled.extend(event["samples"])

        thread_id = f"train{self.experiment_id}-{uuid.uuid4().hex[:12]}"
        problem = scheduled.problem
        text = problem.problem
        if self.settings.instruction.strip():
            text = f"{text}\n\n{self.settings.instruction.strip()}"
        outcome = await run_problem(
            graph=config.method,
            problem=text,
            context=self.context(scheduled, member),
            distill=config.distill,
            thread_id=thread_id,
            ledger=self.ledger,
            checkpoints=self.checkpoints / f"{thread_id}.sqlite",
            on_event=keep,
            gold=problem.answer,
            grade=grade_answer,
            experiment_id=self.experiment_id,
            item_id=problem.id,
        )
        for suffix in ("", "-wal", "-shm"):
            (self.checkpoints / f"{thread_id}.sqlite{suffix}").unlink(missing_ok=True)
        # A rollout that stopped at its output cap (status "truncated") is a sample of the
        # policy like any other and is graded, so it is trained; only a failed run is not.
        done = outcome.status in FINISHED and outcome.grade is not None and bool(sampled)
        reward = (1.0 if outcome.grade else 0.0) if done else None
        trained = sampled[-1] if done else None
        self.ledger.add_result(
            self.experiment_id,
            label=config.label,
            method=config.method,
            seed=member,
            item_id=f"{problem.id}@{scheduled.step}.{scheduled.slot}",
            thread_id=thread_id,
        )
        record_rollout(
            self.ledger,
            experiment_id=self.experiment_id,
            thread_id=thread_id,
            step=scheduled.step,
            mode=mode,
            role=role,
            reward=reward,
            trained_tokens=len(trained.completion_ids) if trained else 0,
        )
        return Rollout(scheduled, member, thread_id, reward, trained)

    def pack(self, rollouts: list[Rollout]) -> dict[str, list[Any]]:
        """TRL's fields: prompt and completion ids, sampling log-probs, the loss mask, rewards.

        A failed rollout gets one placeholder token that its ``env_mask`` (TRL's name for a
        per-token loss mask) keeps out of the objective, and no reward (None: TRL leaves it out
        of its group's baseline and gives it no advantage).
        """
        fields: dict[str, list[Any]] = {
            "prompt_ids": [],
            "completion_ids": [],
            "logprobs": [],
            "env_mask": [],
            "pdr_reward": [],
            "pdr_mode": [],
        }
        for rollout in rollouts:
            trained = rollout.trained
            if trained is None:
                prompt, completion, logprobs = [self.pad_token], [self.pad_token], [0.0]
                mask = [0]
            else:
                prompt, completion = trained.prompt_ids, trained.completion_ids
                logprobs, mask = trained.logprobs, [1] * len(completion)
            fields["prompt_ids"].append(list(prompt))
            fields["completion_ids"].append(list(completion))
            fields["logprobs"].append(list(logprobs))
            fields["env_mask"].append(mask)
            fields["pdr_reward"].append(rollout.reward)
            fields["pdr_mode"].append(rollout.scheduled.mode)
        return fields


def pdr_reward(prompts: list[Any], completions: list[Any], **columns: Any) -> list[float | None]:
    """TRL's reward function: the grader's verdict each rollout already carries."""
    rewards: list[float | None] = list(columns["pdr_reward"])
    return rewards
