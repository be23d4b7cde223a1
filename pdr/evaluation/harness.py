"""The evaluation harness: methods x configurations x seeds over a dataset, into the run ledger.

An experiment is a named row of the ledger whose results are (configuration label, item, seed)
cells, each linked to one run. Running an experiment again resumes it: cells whose run finished
are skipped (``Ledger.completed_items``), failed or interrupted ones are run again.

Budget matching. Each method has a ladder of configurations (``default_ladder``, or your own with
``parse_config``). Without target budgets every configuration of the ladder is run on every item.
With targets (B_seq in tokens), the harness first runs every configuration on the first
``calibrate`` items with the first seed, measures each configuration's mean B_seq there, and picks
for every method and target the configuration whose measured B_seq is nearest (ties go to the
cheaper one). Only the picked configurations are then run on the whole dataset; the calibration
runs of a picked configuration are its first cells, so nothing is run twice. Reports show what the
picked configurations achieved over the whole dataset, never the targets.

The default ladders, for a base output cap T (``max_tokens``, per call):

- long_cot: one call with max_tokens T, 2T, 4T.
- sr: rounds 2, 3, 4 (a first answer plus 1-3 refinements), max_tokens T, kappa T.
- pdr: schedules [2, 1], [4, 1], [4, 2, 1] with the summary distiller, max_tokens T, kappa T.

When every call uses its whole cap, their B_seq are about 1, 2, 4 (long CoT), 2, 3, 4 (SR) and
3, 3, 5 (PDR: drafts, summary and refine per round) units of (prompt + T), so targets from one to
five units find a neighbour in every ladder. A model that stops early spends less: a long chain of
thought that ends after 70 tokens measures the same B_seq at every cap, and then every target
picks the same configuration (the report shows one level for that method). Matching on measured
budgets, not on caps, is what keeps such a method from being credited with a budget it never used.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import sqlite3
import uuid
from collections.abc import Callable, Sequence
from contextlib import closing
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from pdr.datasets import Dataset, Problem
from pdr.evaluation.report import ReportRow, RunResult, summarize
from pdr.grading import grade_answer
from pdr.graphs.context import ContextError, RunContext
from pdr.runner import make_context, run_problem
from pdr.settings import checkpoints_path
from pdr.store.ledger import Ledger, LedgerError, ResultRow

METHODS: tuple[str, ...] = ("pdr", "sr", "long_cot")
# Parameters a configuration may set; the rest of the context is shared by the whole experiment.
CONFIG_KEYS: dict[str, tuple[str, ...]] = {
    "pdr": ("schedule", "max_tokens", "kappa", "k", "distill", "scorer", "temperature"),
    "sr": ("rounds", "max_tokens", "kappa", "temperature"),
    "long_cot": ("max_tokens", "temperature"),
}
Phase = Literal["calibrate", "evaluate"]


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
    def distill(self) -> str:
        """PDR's distill operator (summary unless the configuration names another)."""
        return str(self.params.get("distill", "summary"))

    @property
    def scorer(self) -> str:
        """The scorer of PDR's top-k operators (vote unless named)."""
        return str(self.params.get("scorer", "vote"))

    def context_values(self) -> dict[str, Any]:
        """The params that are run-context fields (everything but distill and scorer)."""
        return {k: v for k, v in self.params.items() if k not in {"distill", "scorer"}}

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
    """Raise EvalError if the configuration's values do not make a valid run context."""
    from pdr.nodes.distill import DISTILLERS
    from pdr.nodes.scoring import SCORERS

    if config.method == "pdr":
        if config.distill not in DISTILLERS:
            raise EvalError(f"{config.label}: distill must be one of {', '.join(DISTILLERS)}")
        if config.scorer not in SCORERS:
            raise EvalError(f"{config.label}: scorer must be one of {', '.join(SCORERS)}")
    try:
        make_context(config.method, model=model, **config.context_values())
    except (ContextError, TypeError) as error:
        raise EvalError(f"{config.label}: {error}") from error


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
        """The JSON stored with the experiment; equal specs give equal configs."""
        return {
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

    def calibration_items(self) -> list[Problem]:
        """The items every ladder configuration is measured on (none without budgets)."""
        return self.dataset.problems[: self.calibrate] if self.budgets else []

    def default_name(self) -> str:
        """``eval-<hash of the config>``: the same command finds and resumes the same experiment."""
        digest = hashlib.sha256(json.dumps(self.as_config(), sort_keys=True).encode())
        return f"eval-{digest.hexdigest()[:12]}"


@dataclass(frozen=True)
class Cell:
    """One run to make: a configuration on an item with a seed."""

    config: Config
    problem: Problem
    seed: int

    @property
    def key(self) -> tuple[str, str, int]:
        """The (label, item id, seed) key of the ledger's results."""
        return (self.config.label, self.problem.id, self.seed)


@dataclass
class Progress:
    """Where an evaluation phase stands (handed to ``on_progress`` after every run).

    Attributes:
        phase: "calibrate" or "evaluate".
        done: cells finished in this phase, the already completed ones included.
        total: cells of the phase.
        correct: correct answers among the runs finished in this session.
        finished: runs finished in this session.
        failed: runs of this session that ended in an error.
        skipped: cells found completed in the ledger (not run again).
    """

    phase: Phase
    done: int
    total: int
    correct: int = 0
    finished: int = 0
    failed: int = 0
    skipped: int = 0

    @property
    def accuracy(self) -> float | None:
        """Running accuracy of this session's runs (None before the first one)."""
        return self.correct / self.finished if self.finished else None


ProgressHandler = Callable[[Progress], None]


@dataclass(frozen=True)
class Measurement:
    """A configuration's mean B_seq on the calibration items."""

    config: Config
    b_seq: float
    runs: int


@dataclass(frozen=True)
class Pick:
    """The configuration picked for one method and target B_seq."""

    method: str
    target: int
    config: Config
    measured_b_seq: float


@dataclass(frozen=True)
class EvalReport:
    """An experiment's outcome: its rows, and for budget matching the measurements and picks."""

    experiment_id: int
    name: str
    rows: list[ReportRow]
    measurements: list[Measurement]
    picks: list[Pick]
    config: dict[str, Any]


def pick_configs(measurements: Sequence[Measurement], targets: Sequence[int]) -> list[Pick]:
    """For every method and target, the configuration whose measured B_seq is nearest.

    Ties go to the cheaper configuration, then to the earlier one in the ladder.
    """
    picks: list[Pick] = []
    methods = list(dict.fromkeys(m.config.method for m in measurements))
    for method in methods:
        candidates = [m for m in measurements if m.config.method == method and m.runs > 0]
        if not candidates:
            continue
        for target in targets:
            best = min(
                enumerate(candidates),
                key=lambda pair: (abs(pair[1].b_seq - target), pair[1].b_seq, pair[0]),
            )[1]
            picks.append(Pick(method, target, best.config, best.b_seq))
    return picks


def measure(
    results: Sequence[ResultRow], ladders: Sequence[Config], items: set[str], seed: int
) -> list[Measurement]:
    """Mean B_seq of each ladder configuration over its finished runs on the calibration cells."""
    measured: list[Measurement] = []
    for config in ladders:
        values = [
            row.b_seq
            for row in results
            if row.label == config.label
            and row.item_id in items
            and row.seed == seed
            and row.status == "done"
            and row.b_seq is not None
        ]
        mean = sum(values) / len(values) if values else float("nan")
        measured.append(Measurement(config, mean, len(values)))
    return measured


class Harness:
    """Runs an EvalSpec into a ledger; see the module docstring."""

    def __init__(
        self,
        spec: EvalSpec,
        ledger: Ledger,
        *,
        name: str | None = None,
        concurrency: int = 4,
        checkpoints: str | Path | None = None,
        on_progress: ProgressHandler | None = None,
    ) -> None:
        """Prepare (find or create) the experiment.

        Args:
            spec: what to run.
            ledger: where runs and results go.
            name: the experiment's name (default: ``spec.default_name()``); an existing
                experiment of that name is resumed if its config matches.
            concurrency: at most this many runs (problems) in flight at once.
            checkpoints: the LangGraph checkpoint file of the runs (default: the data dir's).
            on_progress: receives a Progress after every finished run.

        Raises:
            EvalError: the experiment exists with another config, or an argument is unusable.
        """
        if concurrency < 1:
            raise EvalError(f"concurrency must be >= 1, got {concurrency}")
        if not spec.ladders:
            raise EvalError("no configurations to run: give at least one method")
        if not spec.seeds:
            raise EvalError("give at least one seed")
        if spec.budgets and spec.calibrate < 1:
            raise EvalError("budget matching needs calibrate >= 1 (items measured per config)")
        labels = [config.label for config in spec.ladders]
        if len(set(labels)) != len(labels):
            raise EvalError("the same configuration appears twice in the ladders")
        self.spec = spec
        self.ledger = ledger
        self.concurrency = concurrency
        self.checkpoints = checkpoints
        self.on_progress = on_progress
        self.name = name or spec.default_name()
        config = spec.as_config()
        found = ledger.find_experiment(self.name)
        if found is None:
            self.experiment_id = ledger.create_experiment(self.name, config)
        else:
            stored = ledger.experiment_config(found)
            if stored != config:
                changed = sorted(
                    k for k in set(stored) | set(config) if stored.get(k) != config.get(k)
                )
                raise EvalError(
                    f"experiment {self.name!r} exists with other settings ({', '.join(changed)} "
                    "differ); rerun it with its own settings or choose another --name"
                )
            self.experiment_id = found
        # The runs' own call cap; the harness caps whole runs with `concurrency`.
        self._shared = dict(spec.context)

    # -- the grid --------------------------------------------------------------------------

    def calibration_cells(self) -> list[Cell]:
        """Every ladder configuration on the calibration items with the first seed."""
        seed = self.spec.seeds[0]
        items = self.spec.calibration_items()
        return [Cell(config, item, seed) for item in items for config in self.spec.ladders]

    def measurements(self, results: Sequence[ResultRow] | None = None) -> list[Measurement]:
        """Each ladder configuration's mean B_seq on the calibration cells (from the ledger)."""
        rows = self.ledger.results(self.experiment_id) if results is None else results
        items = {item.id for item in self.spec.calibration_items()}
        return measure(rows, self.spec.ladders, items, self.spec.seeds[0])

    def picks(self, results: Sequence[ResultRow] | None = None) -> list[Pick]:
        """The configurations budget matching picks (empty without budgets)."""
        if not self.spec.budgets:
            return []
        return pick_configs(self.measurements(results), self.spec.budgets)

    def chosen_configs(self, results: Sequence[ResultRow] | None = None) -> list[Config]:
        """The configurations run on the whole dataset: the picks, else the whole ladders."""
        if not self.spec.budgets:
            return list(self.spec.ladders)
        chosen: dict[str, Config] = {}
        for pick in self.picks(results):
            chosen.setdefault(pick.config.label, pick.config)
        return list(chosen.values())

    def evaluation_cells(self, configs: Sequence[Config]) -> list[Cell]:
        """Configurations x items x seeds, seed-major then item-major.

        In this order a stopped evaluation has covered every configuration on the same items.
        """
        return [
            Cell(config, item, seed)
            for seed in self.spec.seeds
            for item in self.spec.dataset.problems
            for config in configs
        ]

    # -- running ---------------------------------------------------------------------------

    async def run(self) -> EvalReport:
        """Calibrate (with budgets), then evaluate; returns the report of the experiment."""
        write_ahead_log(checkpoints_path(self.checkpoints))
        await self._run_cells("calibrate", self.calibration_cells())
        chosen = self.chosen_configs()
        if self.spec.budgets and not chosen:
            raise EvalError(
                "every calibration run failed, so no configuration has a measured B_seq; "
                "see `pdr runs list` for the errors"
            )
        await self._run_cells("evaluate", self.evaluation_cells(chosen))
        return self.report()

    async def _run_cells(self, phase: Phase, cells: Sequence[Cell]) -> None:
        completed = self.ledger.completed_items(self.experiment_id)
        todo = [cell for cell in cells if cell.key not in completed]
        progress = Progress(phase, done=len(cells) - len(todo), total=len(cells))
        progress.skipped = progress.done
        if not cells:
            return
        self._emit(progress)
        limit = asyncio.Semaphore(self.concurrency)

        async def one(cell: Cell) -> None:
            async with limit:
                correct, failed = await self.run_cell(cell)
            progress.done += 1
            progress.finished += 1
            progress.correct += int(correct)
            progress.failed += int(failed)
            self._emit(progress)

        await asyncio.gather(*(one(cell) for cell in todo))

    def context_for(self, cell: Cell) -> RunContext:
        """The run context of a cell: shared values, the configuration's, model and seed."""
        values = {**self._shared, **cell.config.context_values()}
        return make_context(cell.config.method, model=self.spec.model, seed=cell.seed, **values)

    async def run_cell(self, cell: Cell) -> tuple[bool, bool]:
        """Run one cell, link it to the experiment; returns (correct, failed)."""
        thread_id = f"eval{self.experiment_id}-{uuid.uuid4().hex[:12]}"
        outcome = await run_problem(
            graph=cell.config.method,
            problem=self.spec.prompt(cell.problem),
            context=self.context_for(cell),
            distill=cell.config.distill,
            scorer=cell.config.scorer,
            thread_id=thread_id,
            ledger=self.ledger,
            checkpoints=self.checkpoints,
            gold=cell.problem.answer,
            grade=grade_answer,
            experiment_id=self.experiment_id,
            item_id=cell.problem.id,
        )
        self.ledger.add_result(
            self.experiment_id,
            label=cell.config.label,
            method=cell.config.method,
            seed=cell.seed,
            item_id=cell.problem.id,
            thread_id=thread_id,
        )
        return bool(outcome.grade), outcome.status != "done"

    def _emit(self, progress: Progress) -> None:
        if self.on_progress is not None:
            self.on_progress(replace(progress))  # a snapshot: handlers may keep it

    # -- reporting -------------------------------------------------------------------------

    def report(self) -> EvalReport:
        """The experiment's report from the ledger (whatever has finished so far)."""
        results = self.ledger.results(self.experiment_id)
        chosen = {config.label for config in self.chosen_configs(results)}
        items = {item.id for item in self.spec.dataset.problems}
        runs = [
            to_run_result(row)
            for row in results
            if row.label in chosen
            and row.item_id in items
            and row.seed in self.spec.seeds
            and row.status in {"done", "failed"}
        ]
        return EvalReport(
            experiment_id=self.experiment_id,
            name=self.name,
            rows=summarize(runs),
            measurements=self.measurements(results) if self.spec.budgets else [],
            picks=self.picks(results),
            config=self.spec.as_config(),
        )


def matching_markdown(report: EvalReport) -> str:
    """The budget-matching table of a report as Markdown ("" without budgets).

    One row per ladder configuration: its mean B_seq on the calibration items and the targets
    that picked it.
    """
    if not report.measurements:
        return ""
    lines = [
        "| method | configuration | calibration runs | measured B_seq | picked for target B_seq |",
        "|---|---|---|---|---|",
    ]
    for measurement in report.measurements:
        config = measurement.config
        targets = ", ".join(str(p.target) for p in report.picks if p.config == config)
        measured = f"{measurement.b_seq:,.0f}" if measurement.runs else "-"
        shown = config.label.removeprefix(config.method).strip()
        lines.append(
            f"| {config.method} | {shown} | {measurement.runs} | {measured} | {targets or '-'} |"
        )
    return "\n".join(lines) + "\n"


def write_ahead_log(path: Path) -> None:
    """Put the checkpoint SQLite file in WAL mode (a setting the file keeps).

    Every run opens its own connection to the checkpoint file; in SQLite's default rollback mode a
    run writing its checkpoint and another reading or writing one get "database is locked" under
    load. In WAL mode readers never block the writer and writers queue on the busy timeout.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    with closing(sqlite3.connect(path, timeout=30)) as connection:
        connection.execute("PRAGMA journal_mode=WAL")


def to_run_result(row: ResultRow) -> RunResult:
    """A ledger result as the report sees it (a failed run is a wrong answer)."""
    return RunResult(
        method=row.method,
        label=row.label,
        item_id=row.item_id,
        seed=row.seed,
        correct=bool(row.grade) and row.status == "done",
        failed=row.status != "done",
        b_seq=row.b_seq or 0,
        b_tot=row.b_tot or 0,
        wall_s=row.wall_s or 0.0,
        calls=row.calls,
    )


def stored_report(ledger: Ledger, experiment: str | int) -> EvalReport:
    """The report of an experiment already in the ledger, by name or id, without its dataset.

    The cells to report are those of the stored config: the picked configurations (recomputed
    from the calibration runs) or every configuration of the ladders.

    Raises:
        EvalError: no such experiment.
    """
    experiment_id = _experiment_id(ledger, experiment)
    config = ledger.experiment_config(experiment_id)
    results = ledger.results(experiment_id)
    ladders = [Config(c["method"], dict(c["params"])) for c in config["ladders"]]
    budgets = [int(b) for b in config.get("budgets", [])]
    seeds = [int(s) for s in config.get("seeds", [0])]
    measurements: list[Measurement] = []
    picks: list[Pick] = []
    if budgets:
        items = {str(item) for item in config.get("calibration_items", [])}
        measurements = measure(results, ladders, items, seeds[0])
        picks = pick_configs(measurements, budgets)
        chosen = {pick.config.label for pick in picks}
    else:
        chosen = {config.label for config in ladders}
    runs = [
        to_run_result(row)
        for row in results
        if row.label in chosen and row.seed in seeds and row.status in {"done", "failed"}
    ]
    name = str(experiment) if not str(experiment).isdigit() else f"experiment {experiment_id}"
    return EvalReport(experiment_id, name, summarize(runs), measurements, picks, config)


def _experiment_id(ledger: Ledger, experiment: str | int) -> int:
    if isinstance(experiment, int) or str(experiment).isdigit():
        try:
            ledger.experiment_config(int(experiment))
            return int(experiment)
        except LedgerError:
            pass
    found = ledger.find_experiment(str(experiment))
    if found is None:
        raise EvalError(f"no experiment {experiment!r} in the ledger {ledger.url}")
    return found


def run_eval(spec: EvalSpec, ledger: Ledger, **options: Any) -> EvalReport:
    """Run (or resume) an experiment from synchronous code; options as for Harness."""
    return asyncio.run(Harness(spec, ledger, **options).run())
