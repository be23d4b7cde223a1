"""Several ``pdr`` processes and signals: exclusive resume, leases, one shared SQLite ledger.

Each ``pdr`` command runs in a child forked from the test (tests/forked.py: the real command line,
its own process), against the OpenAI-compatible server on loopback (tests/openai_server.py, a
double for a paid API or a vLLM server), with one SQLite ledger and one checkpoint file shared by
all of them, as on one machine.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from pdr import calls
from pdr.store import leases
from pdr.store.ledger import Ledger
from pdr.store.ledger_models import Lease, utcnow
from tests import forked
from tests.conftest import Store
from tests.openai_server import FakeOpenAIServer, Fault, Served

PROBLEM = "What is 17 * 23?"


@pytest.fixture(autouse=True)
def no_backoff(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(calls, "RETRY_BACKOFF_S", 0.0)
    yield


def wait_for(condition: object, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.02)


def killed_run(
    server: FakeOpenAIServer, store: Store, tmp_path: Path, thread: str, at: int
) -> None:
    """A PDR run (summary, [3, 2, 1]: 8 calls) SIGKILLed when its request ``at`` arrives."""
    server.fault = lambda served: Fault(kill_on_arrival=True) if served.number == at else None
    child = forked.start(
        [
            "run",
            PROBLEM,
            "--model",
            server.spec(),
            "--schedule",
            "3,2,1",
            "--thread-id",
            thread,
            "-q",
            *store.args,
        ],
        tmp_path / "out",
    )
    server.target_pid = child.pid
    assert child.wait() == -9, child.err
    server.fault = lambda served: None


# -- 2. exclusive resume -----------------------------------------------------------------------


@pytest.mark.slow
def test_concurrent_resumes_of_one_run_execute_it_once(store: Store, tmp_path: Path) -> None:
    with FakeOpenAIServer() as server:
        killed_run(server, store, tmp_path, "k", at=5)
        before = server.completed()
        # Slow calls: the first resume holds the run while the three others try.
        server.latency = 0.4
        children = [
            forked.start(["resume", "k", "-q", "--db", store.ledger], tmp_path / "out")
            for _ in range(4)
        ]
        codes = sorted(child.wait() for child in children)
        after = server.completed() - before
    assert codes == [0, 2, 2, 2], [child.err for child in children]
    for child in children:
        if child.process.exitcode == 2:
            assert child.err.startswith("Error: THREAD_ID: run 'k' is being executed by pid ")
            assert f"on host {socket.gethostname()} since " in child.err
    ledger = Ledger(store.ledger)
    run = ledger.get_run("k")
    assert ledger.lease_holder("k") is None  # given back
    ledger.close()
    assert run is not None and run.status == "done"
    # One resume made the calls the run lacked, each once: 8 steps answered in all, the calls
    # in flight at the kill made again and marked repeats, no other call twice.
    assert set(before + after) == {
        *[("draft", 1, i) for i in range(3)],
        ("distill", 1, 0),
        *[("draft", 2, i) for i in range(2)],
        ("distill", 2, 0),
        ("refine", 3, 0),
    }
    # A step answered twice was in flight at the kill: its second call is marked a repeat.
    repeats = Counter((r["role"], r["round"], r["index"]) for r in run.call_records if r["repeat"])
    for step, times in (before + after).items():
        assert times <= 1 + repeats[step], (step, times)
    assert all(times == 1 for times in after.values())  # the four resumes asked each once
    assert (run.b_seq, run.b_tot) == tuple(run.recorded_budgets)


def test_a_second_run_or_resume_of_a_thread_being_executed_is_refused(
    store: Store, tmp_path: Path
) -> None:
    with FakeOpenAIServer() as server:
        server.latency = lambda served: 30.0 if served.number == 1 else 0.0
        args = ["run", PROBLEM, "--model", server.spec(), "--graph", "long_cot", "-q"]
        holder = forked.start([*args, "--thread-id", "busy", *store.args], tmp_path / "out")
        wait_for(lambda: len(server.requests) == 1)
        again = forked.run([*args, "--thread-id", "busy", *store.args], tmp_path / "out")
        resumed = forked.run(["resume", "busy", "--db", store.ledger], tmp_path / "out")
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait()
        assert len(server.requests) == 1  # neither refused command made a call
    for refused in (again, resumed):
        assert refused.process.exitcode == 2
        assert refused.err.startswith(
            f"Error: THREAD_ID: run 'busy' is being executed by pid {holder.pid} on host "
            f"{socket.gethostname()} since "
        ), refused.err
        assert re.search(
            r" UTC \(heartbeat \d+ s ago\); wait for it to finish or stop that process", refused.err
        )


def test_a_lease_whose_holder_died_is_taken_over(store: Store) -> None:
    ledger = Ledger(store.ledger)
    gone = subprocess.run([sys.executable, "-c", "pass"], check=True)
    assert gone.returncode == 0
    dead = leases.Holder(id="dead", pid=subprocess.Popen([sys.executable, "-c", "pass"]).pid)
    os.waitpid(dead.pid, 0)  # the process has ended: its pid names no process now
    assert ledger.take_lease("t", dead) is None
    me = leases.Holder()
    taken = ledger.take_lease("t", me)
    assert taken is not None and (taken.holder, taken.pid) == ("dead", dead.pid)
    assert ledger.lease_holder("t") is not None and ledger.renew_lease("t", me)
    assert not ledger.renew_lease("t", dead)  # the old holder learns it lost the lease
    ledger.release_lease("t", me)
    assert ledger.lease_holder("t") is None
    ledger.close()


def test_a_lease_on_another_host_is_kept_until_its_heartbeat_is_stale(store: Store) -> None:
    ledger = Ledger(store.ledger)
    far = leases.Holder(id="far", host="gpu-box-7", pid=4242)
    ledger.take_lease("t", far)
    with pytest.raises(leases.LeaseHeldError, match=r"by pid 4242 on host gpu-box-7 since "):
        ledger.take_lease("t", leases.Holder())
    with ledger.engine.begin() as connection:  # its holder stopped renewing a while ago
        stale = utcnow() - timedelta(seconds=leases.STALE_AFTER_S + 1)
        connection.execute(Lease.__table__.update().values(heartbeat_at=stale))
    taken = ledger.take_lease("t", leases.Holder())
    assert taken is not None and taken.host == "gpu-box-7"
    ledger.close()


# -- 8 processes on one ledger -------------------------------------------------------------


@pytest.mark.slow
def test_eight_processes_share_one_ledger(store: Store, tmp_path: Path) -> None:
    with FakeOpenAIServer() as server:
        server.latency = 0.02
        children = [
            forked.start(
                [
                    "run",
                    PROBLEM,
                    "--model",
                    server.spec(),
                    "--schedule",
                    "2,2,1",
                    "--thread-id",
                    f"p{number}",
                    "-q",
                    *store.args,
                ],
                tmp_path / "out",
            )
            for number in range(8)
        ]
        codes = [child.wait() for child in children]
    assert codes == [0] * 8, [child.err for child in children]
    assert not any("locked" in child.err for child in children)
    ledger = Ledger(store.ledger)
    runs = [ledger.get_run(f"p{number}") for number in range(8)]
    ledger.close()
    for run in runs:
        assert run is not None and run.status == "done" and run.calls == 7
        assert (run.b_seq, run.b_tot) == tuple(run.recorded_budgets)


# -- 11. signals ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("number", "name", "code"),
    [(signal.SIGINT, "Ctrl-C (SIGINT)", 130), (signal.SIGTERM, "SIGTERM", 143)],
)
def test_a_signal_records_the_calls_in_flight_and_says_how_to_resume(
    store: Store, tmp_path: Path, number: signal.Signals, name: str, code: int
) -> None:
    def hang_refine(served: Served) -> Fault | None:
        return Fault(hang=60) if served.role == "refine" else None

    with FakeOpenAIServer(fault=hang_refine) as server:
        child = forked.start(
            [
                "run",
                PROBLEM,
                "--model",
                server.spec(),
                "--schedule",
                "2,1",
                "--thread-id",
                "i",
                "-q",
                *store.args,
            ],
            tmp_path / "out",
        )
        wait_for(lambda: any(served.role == "refine" for served in server.requests))
        os.kill(child.pid, number)
        assert child.wait() == code
        server.fault = lambda served: None
        resumed = forked.run(["resume", "i", "-q", "--db", store.ledger], tmp_path / "out")
    assert child.err == (
        f"Error: run i interrupted by {name} after 4 calls; its calls in flight were recorded as "
        f"cancelled; continue it with: pdr resume i\n"
    )
    assert resumed.process.exitcode == 0 and "Answer: 391" in resumed.out
    ledger = Ledger(store.ledger)
    run = ledger.get_run("i")
    ledger.close()
    assert run is not None and run.status == "done"
    refines = [r for r in run.call_records if r["role"] == "refine"]
    assert [(r["error"], r["estimated"], r["repeat"]) for r in refines] == [
        (
            "cancelled: the run was interrupted during the call (prompt tokens estimated)",
            True,
            False,
        ),
        (None, False, True),
    ]
    assert refines[0]["input_tokens"] > 0 and refines[0]["output_tokens"] == 0
