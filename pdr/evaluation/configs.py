"""What an experiment runs: configurations of each method, their default ladders, the spec.

A configuration is one method with the run-context values it sets (and, for PDR, the distill
operator and scorer). ``default_ladder`` gives each method's default configurations for a base
output cap T; ``parse_config`` reads one from ``METHOD:key=value,...``. An ``EvalSpec`` is
everything that defines an experiment, so equal specs name (and resume) the same experiment.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from pdr.evaluation.problems import Dataset, Problem
from pdr.graphs.catalog import context_type, make_context, method_names
from pdr.graphs.context import ContextError, context_fields
from pdr.redact import redacted

METHODS: tuple[str, ...] = ("pdr", "sr", "long_cot")
# Parameters a configuration may set; the rest of the context is shared by the whole experiment.
# ``model`` lets one experiment hold two models side by side (before and after ``pdr train``).
CONFIG_KEYS: dict[str, tuple[str, ...]] = {
    "pdr": (
        "schedule",
        "max_tokens",
        "kappa",
        "k",
        "distill",
        "scorer",
        "temperature",
        "inject",
        "model",
    ),
    "sr": ("rounds", "max_tokens", "kappa", "temperature", "model"),
    "long_cot": ("max_tokens", "temperature", "model"),
}


# Configuration keys that are not run-context fields: the graph's operator and scorer, and the
# candidate an experiment plants (its text depends on each problem's gold answer).
NOT_CONTEXT = frozenset({"distill", "scorer", "inject"})
INJECT_VALUES = ("correct", "incorrect")


class EvalError(ValueError):
    """An evaluation that cannot run as asked; the message says what to change."""


@dataclass(frozen=True)
class Config:
    """One configuration of one method: the run-context values it sets.

    Attributes:
        method: pdr, sr or long_cot.
        params: context values (schedule, rounds, max_tokens, kappa, ...) plus, for PDR, the
            ``distill`` operator and ``scorer`` names.
    """

    method: str
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def label(self) -> str:
        """A readable, unique key: ``pdr schedule=[2,1] max_tokens=128 ...`` (sorted keys)."""
        parts = [f"{key}={_compact(self.params[key])}" for key in sorted(self.params)]
        return " ".join([self.method, *parts])

    @property
    def distill(self) -> str | None:
        """PDR's distill operator, when the configuration names one (None: summary)."""
        value = self.params.get("distill")
        return None if value is None else str(value)

    @property
    def scorer(self) -> str | None:
        """The scorer of PDR's top-k operators, when the configuration names one (None: vote)."""
        value = self.params.get("scorer")
        return None if value is None else str(value)

    @property
    def inject(self) -> str | None:
        """The kind of candidate planted among round 1's drafts (correct, incorrect), if any."""
        value = self.params.get("inject")
        return None if value is None else str(value)

    def context_values(self) -> dict[str, Any]:
        """The params that are run-context fields (all but distill, scorer and inject)."""
        return {k: v for k, v in self.params.items() if k not in NOT_CONTEXT}

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form (stored with the experiment)."""
        return {"method": self.method, "params": dict(self.params)}


def _compact(value: Any) -> str:
    return json.dumps(value, separators=(",", ":")) if not isinstance(value, str) else value


def default_ladder(method: str, max_tokens: int) -> list[Config]:
    """The default configurations of ``method`` for a per-call output cap ``max_tokens``."""
    t = max_tokens
    if method == "long_cot":
        return [Config("long_cot", {"max_tokens": m}) for m in (t, 2 * t, 4 * t)]
    if method == "sr":
        return [Config("sr", {"rounds": r, "max_tokens": t, "kappa": t}) for r in (2, 3, 4)]
    if method == "pdr":
        return [
            Config("pdr", {"schedule": s, "max_tokens": t, "kappa": t, "distill": "summary"})
            for s in ([2, 1], [4, 1], [4, 2, 1])
        ]
    raise EvalError(f"unknown method {method!r}; choose from {', '.join(METHODS)}")


def _split_top_level(text: str) -> list[str]:
    """Split on commas that are not inside brackets (``schedule=[4,2,1],kappa=64``)."""
    parts, depth, current = [], 0, ""
    for char in text:
        if char in "[(":
            depth += 1
        elif char in "])":
            depth -= 1
        if char == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += char
    parts.append(current)
    return [part.strip() for part in parts if part.strip()]


def parse_config(text: str) -> Config:
    """A configuration from ``METHOD:key=value,...``, e.g. ``pdr:schedule=[3,1],max_tokens=128``.

    Values are read as JSON when they parse (numbers, lists), as text otherwise. The values are
    checked against the method's run context at once.

    Raises:
        EvalError: naming the unknown method, key or bad value.
    """
    method, _, body = text.strip().partition(":")
    method = method.strip()
    if method not in METHODS:
        raise EvalError(
            f"configuration {text!r}: start with a method ({', '.join(METHODS)}), "
            "e.g. 'pdr:schedule=[2,1],max_tokens=128'"
        )
    params: dict[str, Any] = {}
    for part in _split_top_level(body):
        key, sep, raw = part.partition("=")
        key = key.strip()
        if not sep or key not in CONFIG_KEYS[method]:
            raise EvalError(
                f"configuration {text!r}: {part!r} is not KEY=VALUE with a key of {method} "
                f"({', '.join(CONFIG_KEYS[method])})"
            )
        try:
            params[key] = json.loads(raw)
        except json.JSONDecodeError:
            params[key] = raw.strip()
    config = Config(method, params)
    check_config(config)
    return config


def check_config(config: Config, model: str = "scripted-check") -> None:
    """Raise EvalError if the configuration's values do not make a valid run of its method."""
    if config.inject is not None and config.inject not in INJECT_VALUES:
        raise EvalError(
            f"{config.label}: inject must be {' or '.join(INJECT_VALUES)}, got {config.inject!r}"
        )
    try:
        method_names(config.method, config.distill, config.scorer)
        make_context(config.method, **{"model": model, **config.context_values()})
    except (ContextError, TypeError) as error:
        raise EvalError(f"{config.label}: {error}") from error


def shared_values(method: str, shared: dict[str, Any]) -> dict[str, Any]:
    """The experiment-wide context values that ``method``'s run context takes."""
    taken = set(context_fields(context_type(method)))
    return {name: value for name, value in shared.items() if name in taken}


@dataclass(frozen=True)
class EvalSpec:
    """Everything that defines an experiment (and so its default name).

    Attributes:
        dataset: the problems.
        model: the model spec every run uses.
        ladders: the candidate configurations, all methods together.
        budgets: target B_seq values; empty: run every configuration of the ladders.
        seeds: run-context seeds; each item is run once per seed.
        calibrate: items used to measure the configurations when there are budgets.
        context: run-context values shared by every run (temperature, max_concurrency, ...).
        instruction: text appended to every problem (after a blank line), e.g. an answer format
            that a small model follows; empty: the problems as they are.
    """

    dataset: Dataset
    model: str
    ladders: list[Config]
    budgets: list[int] = field(default_factory=list)
    seeds: list[int] = field(default_factory=lambda: [0])
    calibrate: int = 2
    context: dict[str, Any] = field(default_factory=dict)
    instruction: str = ""

    def prompt(self, problem: Problem) -> str:
        """The problem text a run is given: the problem, then the instruction if there is one."""
        return f"{problem.problem}\n\n{self.instruction}" if self.instruction else problem.problem

    def as_config(self) -> dict[str, Any]:
        """The JSON stored with the experiment; equal specs give equal configs.

        URL passwords (in the model spec, say) are replaced by ``***``: the ledger never holds one.
        """
        stored: dict[str, Any] = redacted(
            {
                "dataset": self.dataset.name,
                "fingerprint": self.dataset.fingerprint,
                "items": len(self.dataset),
                "model": self.model,
                "ladders": [config.as_dict() for config in self.ladders],
                "budgets": list(self.budgets),
                "seeds": list(self.seeds),
                "calibrate": self.calibrate if self.budgets else 0,
                "calibration_items": [p.id for p in self.calibration_items()],
                "context": dict(sorted(self.context.items())),
                "instruction": self.instruction,
            }
        )
        return stored

    def calibration_items(self) -> list[Problem]:
        """The items every ladder configuration is measured on (none without budgets)."""
        return self.dataset.problems[: self.calibrate] if self.budgets else []

    def default_name(self) -> str:
        """``eval-<hash of the config>``: the same command finds and resumes the same experiment."""
        digest = hashlib.sha256(json.dumps(self.as_config(), sort_keys=True).encode())
        return f"eval-{digest.hexdigest()[:12]}"
