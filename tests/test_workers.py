"""Evaluation workers sharing one experiment: atomic claims, lapsed leases, joins, status.

Every test runs on SQLite files and on the real PostgreSQL server the tests start (the ``store``
fixture). The model is the OpenAI-compatible server on loopback (tests/openai_server.py, a double
for vLLM servers, which cannot run here) with a simulated latency; the workers are real ``pdr
eval`` processes (``--workers`` starts them with ``python -m pdr.cli``), one of them SIGKILLed.
"""

from __future__ import annotations

import os
import re
import signal
import threading
import time
from collections import Counter
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pdr.cli import app
from pdr.evaluation.datasets import load_dataset
from pdr.store.cells import CellKey, Claim
from pdr.store.leases import Holder
from pdr.store.ledger import Ledger
from pdr.store.queue import WorkQueue
from tests import forked
from tests.conftest import Store
from tests.openai_server import FakeOpenAIServer, Served

DATASET = "synthetic:level=1,n=40,seed=0"
EVAL = ["eval", "--no-progress", "--concurrency", "1", "--dataset"]
FOUR_WORKERS = ["--workers", "4", "--lease-timeout", "5"]
SR = ["--method", "sr", "--config", "sr:rounds=2,max_tokens=32,kappa=32"]


def queue_of(store: Store, items: int, name: str = "q") -> tuple[Ledger, WorkQueue]:
    ledger = Ledger(store.ledger)
    experiment_id = ledger.create_experiment(name, {})
    queue = WorkQueue(ledger, experiment_id)
    keys = [CellKey("evaluate", n, "sr", "sr x", f"item{n}", 0) for n in range(items)]
    queue.enqueue(keys, completed=set())
    return ledger, queue


def test_concurrent_claims_take_every_cell_exactly_once(store: Store) -> None:
    ledger, queue = queue_of(store, 60)
    queue.enqueue([CellKey("evaluate", 0, "sr", "sr x", "item0", 0)], completed=set())  # again
    taken: list[tuple[str, Claim]] = []
    lock = threading.Lock()

    def claimer() -> None:
        me = Holder()
        while (claim := queue.claim("evaluate", me, lease_timeout_s=60)) is not None:
            with lock:
                taken.append((me.id, claim))

    threads = [threading.Thread(target=claimer) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(claim.item_id for _, claim in taken) == sorted(f"item{n}" for n in range(60))
    assert {claim.claims for _, claim in taken} == {1}
    assert len({claim.thread_id for _, claim in taken}) == 60
    assert len({holder for holder, _ in taken}) > 1  # the threads really competed
    assert queue.state() == queue.state("evaluate")
    assert (queue.state().running, queue.state().waiting) == (60, 0)
    ledger.close()


def test_a_claim_lapses_after_the_lease_time_out_and_keeps_its_run(store: Store) -> None:
    ledger, queue = queue_of(store, 1)
    dead, alive = Holder(), Holder()
    first = queue.claim("evaluate", dead, lease_timeout_s=0.5)
    assert first is not None and not first.taken_over
    assert queue.claim("evaluate", alive, lease_timeout_s=0.5) is None  # held, not lapsed
    assert queue.renew(dead) == 1
    time.sleep(0.7)
    second = queue.claim("evaluate", alive, lease_timeout_s=0.5)
    assert second is not None and second.taken_over
    assert (second.id, second.thread_id, second.claims) == (first.id, first.thread_id, 2)
    assert queue.renew(dead) == 0  # the dead worker's heartbeat no longer holds it
    assert [(w.pid, w.running) for w in queue.workers()] == [(os.getpid(), 1)]
    queue.finish(second.id)
    assert (queue.state().done, queue.claim("evaluate", alive, lease_timeout_s=0.5)) == (1, None)
    ledger.close()


def problem_of(served: Served, problems: list[str]) -> str:
    text = "\n".join(str(m.get("content")) for m in served.body["messages"])
    found = [problem for problem in problems if problem in text]
    assert len(found) == 1, text
    return found[0]


@pytest.mark.slow
def test_four_workers_finish_forty_items_once_and_a_killed_workers_cell_is_resumed(
    store: Store, tmp_path: Path
) -> None:
    problems = [p.problem for p in load_dataset(DATASET).problems]
    # The second call of a run is slow, so the kill finds a run with its first call checkpointed.
    with FakeOpenAIServer(latency=lambda served: 0.6 if served.round > 1 else 0.15) as server:
        child = forked.start(
            [*EVAL, DATASET, *SR, "--model", server.spec(), *store.args, *FOUR_WORKERS],
            tmp_path / "out",
        )
        ledger = Ledger(store.ledger)
        victim: tuple[int, str] | None = None
        deadline = time.monotonic() + 120
        while victim is None and time.monotonic() < deadline:
            time.sleep(0.05)
            queue = WorkQueue(ledger, 1)  # the store's first experiment
            if queue.state().done < 8:
                continue
            for load in queue.workers():
                cell = running_cell_with_a_kept_call(ledger, queue, load.worker)
                if cell is not None:
                    os.kill(load.pid, signal.SIGKILL)
                    victim = (load.pid, cell)
                    break
        assert victim is not None, child.err
        assert child.wait(timeout=180) == 0, child.err
        requests = list(server.requests)
    killed_pid, killed_thread = victim
    assert f"(pid {killed_pid}) ended with signal 9" in child.err
    assert "the other workers finished the cells of those that ended" in child.err

    queue = WorkQueue(ledger, 1)
    results = ledger.results(queue.experiment_id)
    # Every item has exactly one result, run to its end.
    assert sorted(r.item_id for r in results) == sorted(
        p.id for p in load_dataset(DATASET).problems
    )
    assert {r.status for r in results} == {"done"}
    claims = queue.claims()
    assert sum(claims.values()) == 41 and max(claims.values()) == 2
    taken_over = next(r for r in results if r.thread_id == killed_thread)
    assert claims[(taken_over.label, taken_over.item_id, 0)] == 2
    # Every call was made once, except the one in flight in the killed worker: the first call of
    # its run was kept by the checkpoint and never made again.
    asked = Counter((problem_of(served, problems), served.step) for served in requests)
    killed_problem = next(
        p.problem for p in load_dataset(DATASET).problems if p.id == taken_over.item_id
    )
    twice = {key: n for key, n in asked.items() if n > 1}
    assert set(twice) <= {k for k in asked if k[0] == killed_problem and k[1][1] > 1}, twice
    assert sum(n for (problem, _), n in asked.items() if problem != killed_problem) == 78
    run = ledger.get_run(killed_thread)
    assert run is not None and run.status == "done"
    first_round = [r for r in run.call_records if r["round"] == 1]
    assert [(r["error"], bool(r.get("repeat"))) for r in first_round] == [(None, False)]
    assert asked[(killed_problem, ("draft", 1, 0))] == 1
    # The call in flight when the worker died was made again and is marked a repeat.
    second = [(r["error"], r.get("repeat")) for r in run.call_records if r["round"] == 2]
    assert len(second) == 2 and second[0][0] is not None and second[1] == (None, True), second
    assert (run.b_seq, run.b_tot) == tuple(run.recorded_budgets)
    # Four workers each ran a share.
    assert len({r.thread_id for r in results}) == 40
    ledger.close()


def running_cell_with_a_kept_call(ledger: Ledger, queue: WorkQueue, worker: str) -> str | None:
    """The thread of a cell ``worker`` runs whose first call succeeded and second is in flight."""
    for cell in queue.claimed():
        if (cell.state, cell.worker) != ("running", worker):
            continue
        thread_id = cell.thread_id
        run = ledger.get_run(thread_id)
        if run is None:
            continue
        rows = run.call_records
        if [r["error"] for r in rows] == [None, "in flight"]:
            return thread_id
    return None


@pytest.mark.slow
def test_a_worker_joins_from_the_ledger_alone_and_status_shows_both(
    store: Store, tmp_path: Path
) -> None:
    with FakeOpenAIServer(latency=0.3) as server:
        first = forked.start(
            [*EVAL, "synthetic:level=1,n=12,seed=0", *SR, "--model", server.spec(), *store.args],
            tmp_path / "out",
        )
        ledger = Ledger(store.ledger)
        queue = WorkQueue(ledger, 1)  # the store's first experiment, joined by its id
        while queue.state().done < 1:
            assert first.process.is_alive(), first.err
            time.sleep(0.05)
        name = 1
        # Only the database: the problems, model and checkpoint location come from the ledger.
        joined = forked.start(
            ["eval", "--join", str(name), "--db", store.ledger, "--concurrency", "1"],
            tmp_path / "out",
        )
        shown = ""
        for _ in range(100):
            shown = (
                CliRunner()
                .invoke(app, ["eval", "--status", str(name), "--db", store.ledger])
                .output
            )
            if len(re.findall(r"│ +(\d+) │ +1 │ \d\d:\d\d:\d\d", shown)) == 2:  # two workers
                break
            time.sleep(0.1)
        assert first.wait() == 0, first.err
        assert joined.wait() == 0, joined.err
    assert str(first.pid) in shown and str(joined.pid) in shown, shown
    assert "in flight per worker" in shown
    assert f"worker pid {joined.pid} joined" in joined.out
    done = CliRunner().invoke(app, ["eval", "--status", str(name), "--db", store.ledger]).output
    assert re.search(r"│ evaluate │ +12 │ +0 │ +0 │", done), done
    assert "finished runs: 12, correct: 0, accuracy: 0.0%" in done
    assert set(queue.claims().values()) == {1}
    assert {cell.pid for cell in queue.claimed()} == {first.pid, joined.pid}
    ledger.close()


def test_eval_without_a_dataset_or_with_no_workers_is_refused(tmp_path: Path) -> None:
    db = ["--db", str(tmp_path / "l.sqlite")]
    result = CliRunner().invoke(app, ["eval", *db])
    assert result.exit_code == 2
    assert result.output == (
        "Error: --dataset: name the problems to evaluate (or --join EXPERIMENT to add a worker, "
        "--status EXPERIMENT to see one)\n"
    )
    result = CliRunner().invoke(app, ["eval", "-d", "synthetic:n=2", "--workers", "0", *db])
    assert (result.exit_code, result.output) == (2, "Error: --workers must be >= 1, got 0\n")
    result = CliRunner().invoke(app, ["eval", "--join", "nope", *db])
    assert result.exit_code == 2
    assert result.output.startswith("Error: no experiment 'nope' in the ledger")


def test_a_worker_stopped_with_ctrl_c_gives_its_cells_back_and_they_resume(
    tmp_path: Path,
) -> None:
    store = Store("sqlite", str(tmp_path / "l.sqlite"), str(tmp_path / "c.sqlite"))
    dataset = "synthetic:level=1,n=24,seed=0"
    command = [*EVAL, dataset, *SR, "--concurrency", "2", *store.args]
    ledger = Ledger(store.ledger)  # created before the child opens it
    queue = WorkQueue(ledger, 1)
    with FakeOpenAIServer(latency=0.5) as server:
        command += ["--model", server.spec()]
        child = forked.start(command, tmp_path / "out")
        deadline = time.monotonic() + 120
        while queue.state().done < 2 or queue.state().running < 2:
            assert time.monotonic() < deadline and child.process.is_alive(), child.err
            time.sleep(0.05)
        os.kill(child.pid, signal.SIGINT)
        assert child.wait() == 130, child.err
        left = queue.state()
        assert (left.running, left.waiting + left.done) == (0, 24)
        stopped = [cell for cell in queue.claimed() if cell.state == "waiting"]
        assert stopped, "the cells in flight went back to the queue"
        assert {ledger.get_run(cell.thread_id).status for cell in stopped} == {"interrupted"}  # type: ignore[union-attr]
        again = forked.run(command, tmp_path / "out")
        assert again.wait() == 0, again.err
    results = ledger.results(1)
    assert len(results) == 24 and {r.status for r in results} == {"done"}
    # The stopped runs were resumed on their own threads, not started over.
    assert {cell.thread_id for cell in stopped} <= {r.thread_id for r in results}
    assert queue.state().done == 24
    ledger.close()
