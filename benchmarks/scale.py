"""Memory and scale: whole processes doing the work, pdr against the floor doing the same calls.

Memory: the peak RSS of a process that runs one M = 64 round (after its warm-up run), and of one
that runs a whole evaluation, each against a process where the floor makes the same calls (the
floor imports only the openai SDK, so the difference is pdr's imports plus its work).

Scale: the evaluation is ``problems`` generated problems through pdr's harness (PDR
``EVAL_SCHEDULE`` with the summary: 9 calls a problem; ledger and checkpoints on SQLite), every
problem started at once and a cap of ``cap`` calls in flight (``max_concurrency``), against the
simulated server. With that cap the fastest possible evaluation makes ``cap`` calls at every
moment, so its rate is ``cap`` over the mean service time of a call (the cap-limited ideal); the
figure is pdr's calls per second over that ideal, beside the floor's. The server's log gives the
calls, their service times and the most in flight.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import Any

from benchmarks import floor
from benchmarks.sim_server import SimServer
from benchmarks.tools import Cell, Client

EVAL_SCHEDULE = (4, 2, 1)


def workload(*args: str) -> dict[str, Any]:
    """Run ``benchmarks.workload`` with ``args``; its JSON line."""
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.workload", *args],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).resolve().parents[1],
    )
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def most_in_flight(log: list[dict[str, Any]]) -> int:
    events = sorted(
        [(e["arrived"], 1) for e in log] + [(e["finished"], -1) for e in log],
        key=lambda event: (event[0], event[1]),
    )
    now = peak = 0
    for _, change in events:
        now += change
        peak = max(peak, now)
    return peak


def save_plan(plan: floor.Plan, path: Path) -> str:
    path.write_text(json.dumps([[asdict(call) for call in stage] for stage in plan]))
    return str(path)


def logged_plan(client: Client, sim: SimServer, cell: Cell) -> floor.Plan:
    sim.reset()
    client.ainvoke(cell)()
    return floor.plan_from_log(sim.log(), floor.pdr_stage)


def measure(
    client: Client, sim: SimServer, *, problems: int, cap: int, wide: int
) -> dict[str, Any]:
    """Peak RSS of an M=``wide`` round and of the evaluation; the evaluation's call rate."""
    folder = Path(tempfile.mkdtemp())
    round_cell = Cell((wide, 1))
    round_plan = save_plan(logged_plan(client, sim, round_cell), folder / "round.json")
    eval_plan = save_plan(
        logged_plan(client, sim, Cell(EVAL_SCHEDULE, "summary")), folder / "eval.json"
    )
    schedule = ",".join(str(m) for m in round_cell.schedule)
    rounds = {
        "pdr ainvoke": workload(
            "pdr-round", "--url", sim.url, "--spec", sim.spec(), "--schedule", schedule
        ),
        "asyncio floor": workload("floor-round", "--url", sim.url, "--plan", round_plan),
    }
    evaluations: dict[str, Any] = {}
    common = ("--url", sim.url, "--problems", str(problems), "--cap", str(cap))
    for name, args in (
        (
            "pdr eval (harness, ledger, checkpoints)",
            (
                "pdr-eval",
                *common,
                "--spec",
                sim.spec(),
                "--schedule",
                ",".join(str(m) for m in EVAL_SCHEDULE),
                "--workdir",
                str(folder / "eval"),
            ),
        ),
        ("asyncio floor", ("floor-eval", *common, "--plan", eval_plan)),
    ):
        sim.reset()
        result = workload(*args)
        log = sim.log()
        service = sum(e["finished"] - e["arrived"] for e in log) / max(1, len(log))
        rate = len(log) / result["wall_s"]
        ideal_rate = cap / service
        evaluations[name] = {
            **result,
            "calls": len(log),
            "most_in_flight": most_in_flight(log),
            "mean_service_s": round(service, 4),
            "calls_per_s": round(rate, 2),
            "ideal_calls_per_s": round(ideal_rate, 2),
            "over_ideal": round(rate / ideal_rate, 3),
        }
    pdr_eval, floor_eval = evaluations.values()
    pdr_round, floor_round = rounds.values()
    return {
        "round": {
            "cell": round_cell.label,
            "processes": rounds,
            "peak_rss_over_floor": round(pdr_round["peak_rss_mb"] / floor_round["peak_rss_mb"], 2),
        },
        "evaluation": {
            "problems": problems,
            "cap": cap,
            "schedule": list(EVAL_SCHEDULE),
            "processes": evaluations,
            "peak_rss_over_floor": round(pdr_eval["peak_rss_mb"] / floor_eval["peak_rss_mb"], 2),
            "wall_over_floor": round(pdr_eval["wall_s"] / floor_eval["wall_s"], 3),
        },
    }
