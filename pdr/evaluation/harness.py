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
import socket
import threading
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from pdr.evaluation.cells import Cell, Phase, Progress, ProgressHandler
from pdr.evaluation.configs import Config, EvalError, EvalSpec, shared_values
from pdr.evaluation.grading import grade_answer
from pdr.evaluation.inject import planted_solution
from pdr.evaluation.matching import Measurement, Pick, measure, pick_configs
from pdr.evaluation.report import EvalReport, analyses, summarize, to_run_result
from pdr.graphs.catalog import make_context
from pdr.graphs.context import RunContext
from pdr.runner import RunOutcome, resume_problem, run_problem
from pdr.settings import checkpoints_location
from pdr.store.cells import CellKey, Claim
from pdr.store.checkpoints import CheckpointError, stored_form
from pdr.store.leases import Holder, LeaseHeldError
from pdr.store.ledger import ENDED, FINISHED, Ledger
from pdr.store.queue import StoredItem, WorkQueue
from pdr.store.rows import ResultRow

__all__ = ["Cell", "Harness", "Progress", "ProgressHandler", "run_eval"]

POLL_S = 0.5
"""How often a worker with nothing to claim looks again (cells held by others may lapse)."""


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
        lease_timeout_s: float | None = None,
        joining: bool = False,
    ) -> None:
        """Prepare (find or create) the experiment and its work queue.

        Args:
            spec: what to run.
            ledger: where runs and results go.
            name: the experiment's name (default: ``spec.default_name()``); an existing
                experiment of that name is resumed if its config matches.
            concurrency: at most this many runs (problems) in flight at once.
            checkpoints: the LangGraph checkpoint file of the runs (default: the data dir's).
            on_progress: receives a Progress after every finished run.
            lease_timeout_s: how long a worker's claim outlives its last heartbeat (default: the
                experiment's, else ``DEFAULT_LEASE_TIMEOUT_S``); stored with a new experiment.
            joining: a worker joining a running experiment (``pdr eval --join``): the stored
                problems and settings are used as they are, and nothing is queued again.

        Raises:
            EvalError: the experiment exists with another config, or an argument is unusable.
        """
        if concurrency < 1:
            raise EvalError(f"concurrency must be >= 1, got {concurrency}")
        if lease_timeout_s is not None and lease_timeout_s <= 0:
            raise EvalError(f"the lease time-out must be > 0 seconds, got {lease_timeout_s:g}")
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
        self.me = Holder()
        self.taken_over = 0  # cells of dead workers this one finished
        self.queue = WorkQueue(ledger, self.experiment_id)
        self.lease_timeout_s = lease_timeout_s or self.queue.settings().lease_timeout_s
        if joining:
            return
        self.queue.save(
            [StoredItem(p.id, p.problem, p.answer, p.level) for p in spec.dataset.problems],
            checkpoints=stored_form(checkpoints_location(checkpoints)),
            host=socket.gethostname(),
            lease_timeout_s=self.lease_timeout_s,
        )
        self.queue.reopen(self.me)

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
        """Calibrate (with budgets), then evaluate; returns the report of the experiment.

        The cells are claimed from the experiment's work queue, so other workers (``pdr eval
        --join``) may share the work; this worker returns once every cell is done, whoever ran it.
        """
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
        if not cells:
            return
        by_key = {cell.key: cell for cell in cells}
        keys = [
            CellKey(phase, position, c.config.method, c.config.label, c.problem.id, c.seed)
            for position, c in enumerate(cells)
        ]
        completed = await asyncio.to_thread(self.ledger.completed_items, self.experiment_id)
        await asyncio.to_thread(self.queue.enqueue, keys, completed)
        queued = await asyncio.to_thread(self.queue.state, phase)
        # A picked configuration's calibration cells are queued in the calibration phase.
        done = len(cells) - queued.waiting - queued.running
        progress = Progress(phase, done=done, total=len(cells), skipped=done)
        self._emit(progress)
        held: set[int] = set()

        async def worker() -> None:
            while True:
                claim = await asyncio.to_thread(
                    self.queue.claim, phase, self.me, self.lease_timeout_s
                )
                if claim is None:
                    left = await asyncio.to_thread(self.queue.state, phase)
                    if left.waiting == 0 and left.running == 0:
                        return
                    await asyncio.sleep(POLL_S)  # cells held by others: wait, or take them over
                    continue
                held.add(claim.id)  # until its run ends: a stopped worker gives it back
                ran = await self.run_claim(claim, by_key[(claim.label, claim.item_id, claim.seed)])
                held.discard(claim.id)
                if ran is None:  # its run's lease is still held: look again later
                    await asyncio.sleep(max(POLL_S, self.lease_timeout_s / 4))
                    continue
                correct, failed = ran
                progress.done += 1
                progress.finished += 1
                progress.correct += int(correct)
                progress.failed += int(failed)
                self.taken_over += int(claim.taken_over)
                self._emit(progress)

        stop = threading.Event()
        beat = threading.Thread(target=self._heartbeat, args=(stop,), daemon=True)
        beat.start()
        try:
            await asyncio.gather(*(worker() for _ in range(self.concurrency)))
        finally:
            stop.set()
            if held:  # stopped mid-way: the cells go back to the queue, their runs resumable
                self.queue.release(self.me, held)

    def _heartbeat(self, stop: threading.Event) -> None:
        # A thread of its own: a run that holds the event loop (a slow import, a tokenizer
        # loading) must not let this worker's claims lapse.
        while not stop.wait(self.lease_timeout_s / 4):
            self.queue.renew(self.me)

    def context_for(self, cell: Cell) -> RunContext:
        """The run context of a cell: shared values, the configuration's, model and seed.

        A configuration that plants a candidate gets it for this problem's gold answer; one that
        names its own ``model`` runs that model instead of the spec's.
        """
        values = {
            "model": self.spec.model,
            **shared_values(cell.config.method, self._shared),
            **cell.config.context_values(),
        }
        if cell.config.inject is not None:
            values["injected_draft"] = planted_solution(cell.problem.answer, cell.config.inject)
        return make_context(cell.config.method, seed=cell.seed, **values)

    async def run_claim(self, claim: Claim, cell: Cell) -> tuple[bool, bool] | None:
        """Run (or resume) a claimed cell, link it, mark it done; returns (correct, failed).

        A cell claimed before (its worker died) has a run: that run is resumed from its
        checkpoint. Returns None, with the cell back in the queue, when another live process
        still executes the run (its claim had lapsed).
        """
        started = await asyncio.to_thread(self.ledger.get_run, claim.thread_id)
        try:
            if started is None:
                outcome = await run_problem(
                    graph=cell.config.method,
                    problem=self.spec.prompt(cell.problem),
                    context=self.context_for(cell),
                    distill=cell.config.distill,
                    scorer=cell.config.scorer,
                    thread_id=claim.thread_id,
                    ledger=self.ledger,
                    checkpoints=self.checkpoints,
                    gold=cell.problem.answer,
                    grade=grade_answer,
                    experiment_id=self.experiment_id,
                    item_id=cell.problem.id,
                )
            else:
                outcome = await self._resume(claim.thread_id)
        except LeaseHeldError:
            await asyncio.to_thread(self.queue.release, self.me, [claim.id])
            return None
        await asyncio.to_thread(
            self.ledger.add_result,
            self.experiment_id,
            label=cell.config.label,
            method=cell.config.method,
            seed=cell.seed,
            item_id=cell.problem.id,
            thread_id=claim.thread_id,
        )
        await asyncio.to_thread(self.queue.finish, claim.id)
        return bool(outcome.grade), outcome.status not in FINISHED

    async def _resume(self, thread_id: str) -> RunOutcome:
        try:
            return await resume_problem(
                thread_id, ledger=self.ledger, checkpoints=self.checkpoints, grade=grade_answer
            )
        except CheckpointError:
            # Claimed and started, but killed before its first checkpoint: start it over (its
            # calls stay in the ledger; any made again are marked repeats).
            return await resume_problem(
                thread_id,
                ledger=self.ledger,
                checkpoints=self.checkpoints,
                grade=grade_answer,
                restart=True,
            )

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
            and row.status in ENDED
        ]
        drafts, injections = analyses(
            self.ledger, self.experiment_id, results, runs, self.spec.ladders
        )
        return EvalReport(
            experiment_id=self.experiment_id,
            name=self.name,
            rows=summarize(runs),
            measurements=self.measurements(results) if self.spec.budgets else [],
            picks=self.picks(results),
            config=self.spec.as_config(),
            drafts=drafts,
            injections=injections,
        )


def run_eval(spec: EvalSpec, ledger: Ledger, **options: Any) -> EvalReport:
    """Run (or resume) an experiment from synchronous code; options as for Harness."""
    return asyncio.run(Harness(spec, ledger, **options).run())
