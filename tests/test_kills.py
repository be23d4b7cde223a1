"""Kill and resume: ``pdr run`` killed at 20+ points of a run, then ``pdr resume``d to its end.

The model is the OpenAI-compatible server on loopback (tests/openai_server.py, a double for a
paid API or vLLM server), reached through ``--model vllm:fake@http://127.0.0.1:PORT/v1``. The
server itself kills the ``pdr`` process with SIGKILL at a chosen point: on the arrival of its
k-th request (a call in flight), or right after writing the k-th reply (0 or 20 ms later: the
reply is on the wire, the client may or may not have read it), over drafts, verification,
distillation and refinement. After each kill the run is resumed, and the server's own request log
is compared with the ledger: a call the server answered twice must be marked ``repeat`` in the
ledger (where the ledger holds it), and the run's stored B_seq and B_tot must equal the sums over
its ledger rows. Every kill point is tried with the ledger and checkpoints in SQLite files and in
a real PostgreSQL database (the ``store`` fixture).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from pdr import calls
from pdr.store.ledger import Ledger
from tests import forked
from tests.conftest import Store
from tests.openai_server import FakeOpenAIServer, Fault, Served

PROBLEM = "What is 17 * 23?"
# (name, pdr run options, calls of a whole run)
METHODS = {
    "verify": (["--distill", "topk", "--scorer", "verify", "--schedule", "3,2,1"], 11),
    "summary": (["--distill", "summary", "--schedule", "2,2,1"], 7),
}


@dataclass(frozen=True)
class KillPoint:
    """Where the server kills the client: at request ``number``, on arrival or after replying."""

    method: str
    number: int
    when: str  # "arrival", "reply" (0 ms after the reply), "reply+20ms"

    def fault(self, served: Served) -> Fault | None:
        if served.number != self.number:
            return None
        if self.when == "arrival":
            return Fault(kill_on_arrival=True)
        return Fault(kill_after=0.0 if self.when == "reply" else 0.02)


def kill_points() -> list[KillPoint]:
    points = [KillPoint("verify", n, "reply") for n in range(1, 12)]
    points += [KillPoint("summary", n, "reply") for n in range(1, 8)]
    points += [KillPoint("verify", n, "arrival") for n in (2, 5, 9, 11)]
    points += [KillPoint("summary", n, "arrival") for n in (3, 7)]
    points += [KillPoint("verify", n, "reply+20ms") for n in (4, 10)]
    return points


KILL_POINTS = kill_points()


@pytest.fixture
def no_backoff(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(calls, "RETRY_BACKOFF_S", 0.0)
    yield


@pytest.mark.slow
@pytest.mark.parametrize("point", KILL_POINTS, ids=lambda p: f"{p.method}-{p.number}-{p.when}")
def test_a_killed_run_resumes_without_repeating_unmarked_calls(
    point: KillPoint, store: Store, tmp_path: Path, no_backoff: None
) -> None:
    options, total = METHODS[point.method]
    files = store.args
    with FakeOpenAIServer(fault=point.fault) as server:
        # Drafts of a round finish in a fixed order, so the k-th request is the same call each time.
        server.latency = lambda served: 0.01 * served.index
        child = forked.start(
            ["run", PROBLEM, "--model", server.spec(), *options, "--thread-id", "k", "-q", *files],
            tmp_path / "out",
        )
        server.target_pid = child.pid
        assert child.wait() == -9, child.err
        killed_role = server.requests[point.number - 1].role
        server.fault = lambda served: None
        resumed = forked.run(["resume", "k", "-q", "--db", files[1]], tmp_path / "out")
        assert resumed.wait() == 0, resumed.err
        assert "Answer: 391" in resumed.out
        answered = server.completed()

    ledger = Ledger(store.ledger)
    run = ledger.get_run("k")
    ledger.close()
    assert run is not None and run.status == "done"
    rows = run.call_records
    assert not [r for r in rows if r["error"] == "in flight"]
    by_step: Counter[tuple[str, int, int]] = Counter()
    repeats: Counter[tuple[str, int, int]] = Counter()
    for row in rows:
        step = (row["role"], row["round"], row["index"])
        by_step[step] += row["error"] is None or row["error"].startswith("interrupted")
        repeats[step] += bool(row.get("repeat"))
    # Every step of the run was answered; a step answered twice is marked a repeat.
    assert len(answered) == total
    for step, times in answered.items():
        assert times <= 1 + repeats[step], (step, times, rows)
        assert by_step[step] >= times, (step, times, rows)  # every answer is in the ledger
    # The stored budgets are the ledger's own sums.
    assert (run.b_seq, run.b_tot) == tuple(run.recorded_budgets)
    assert run.b_tot == sum(r["input_tokens"] + r["output_tokens"] for r in rows)
    print(  # the figures of the report: the kill point, the step it hit, the repeats it cost
        f"KILL {point.method} #{point.number} {point.when} {killed_role}: "
        f"repeats {sum(repeats.values())}, answered twice {sum(t - 1 for t in answered.values())}"
    )


def test_the_kill_points_cover_every_stage() -> None:
    """At least 20 kill points, over drafts, verification, distillation and refinement."""
    assert len(KILL_POINTS) >= 20
    # Request order of a run (drafts of a round arrive together; see the latency above):
    verify = ["draft"] * 3 + ["verify"] * 3 + ["draft"] * 2 + ["verify"] * 2 + ["refine"]
    summary = ["draft"] * 2 + ["distill"] + ["draft"] * 2 + ["distill"] + ["refine"]
    order = {"verify": verify, "summary": summary}
    hit = Counter(order[p.method][p.number - 1] for p in KILL_POINTS)
    assert set(hit) == {"draft", "verify", "distill", "refine"}
