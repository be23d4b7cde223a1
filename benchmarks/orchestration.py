"""Orchestration at the floor: pdr's variants against the same calls made by plain asyncio.

For each cell (schedule, distill operator, separate or batched drafts) the first pdr run is logged
by the simulated server and becomes the floor's plan (``benchmarks.floor``); every tool then runs
the cell ``repeats`` times, interleaved, and every run is checked to have made exactly the
floor's calls, stage by stage. A tool's figure is its median wall time over the floor's (same
cell, same run), with the range of the paired per-repeat ratios. The floor itself is compared with
the ideal: its stages back to back at the server (no time at all between calls). Beside each
figure: the CPU time of the client process per run, the widest spread of a stage's arrivals (how
far apart calls that could start together did start) and the full garbage collections that
paused the process during the tool's runs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from benchmarks import floor
from benchmarks.measure import GcWatch, Series, interleaved, ratio, timed
from benchmarks.sim_server import SimServer
from benchmarks.tools import Cell, Client, Tool

FLOOR = "asyncio floor"
PEER = "optillm pass-through"
SCHEDULES = [(1, 1), (4, 1), (16, 1), (64, 1), (16, 8, 1)]
QUICK_SCHEDULES = [(1, 1), (4, 1), (4, 2, 1)]
OPERATORS = (
    "summary",
    "topk/vote",
    "topk/verify",
    "topk_per_sample/vote",
    "topk_per_sample/verify",
    "random_k",
)


@dataclass
class ToolRuns:
    """The measurements of one tool on one cell."""

    wall: Series = field(default_factory=Series)
    cpu: Series = field(default_factory=Series)
    spread: Series = field(default_factory=Series)
    ideal: Series = field(default_factory=Series)
    full_gc: list[float] = field(default_factory=list)


def stage_sizes(log: list[dict[str, Any]]) -> list[int]:
    return [len(stage) for stage in floor.stages(log, floor.pdr_stage)]


def measure_cell(
    sim: SimServer,
    cell: Cell,
    make_tools: Callable[[floor.Plan], dict[str, Tool]],
    first: Tool,
    repeats: int,
    watch: GcWatch,
    warmed: set[str],
) -> dict[str, Any]:
    """Run the tools interleaved; returns the cell's JSON entry.

    ``first`` runs once to log the plan (a pdr tool); ``make_tools`` builds every tool, the floor
    included, from that plan. A tool not in ``warmed`` runs once first (its imports, clients,
    connections and files), and joins it.
    """
    sim.reset()
    first()
    plan = floor.plan_from_log(sim.log(), floor.pdr_stage)
    expected = [len(stage) for stage in plan]
    tools = make_tools(plan)
    for name, tool in tools.items():
        if name not in warmed:
            tool()
            warmed.add(name)
    runs = {name: ToolRuns() for name in tools}
    for _, name in interleaved(repeats, tools):
        sim.reset()
        start, end, cpu = timed(tools[name])
        log = sim.log()
        made = stage_sizes(log)
        if made != expected:
            raise RuntimeError(
                f"{cell.label}: {name} made calls {made} per stage, the floor's plan {expected}"
            )
        measured = runs[name]
        measured.wall.add(end - start)
        measured.cpu.add(cpu)
        measured.spread.add(floor.widest_spread(log, floor.pdr_stage))
        measured.ideal.add(floor.ideal(log, floor.pdr_stage))
        measured.full_gc.extend(watch.full_between(start, end))
    base = runs[FLOOR]
    return {
        "cell": cell.label,
        "stages": expected,
        "calls": sum(expected),
        "requests_n": [call.n for stage in plan for call in stage if call.n > 1],
        "ideal_s": round(base.ideal.median, 4),
        "floor_over_ideal": ratio(base.wall, base.ideal),
        "tools": {
            name: {
                "ratio": ratio(measured.wall, base.wall),
                "wall_s": measured.wall.summary(),
                "cpu_s": measured.cpu.summary(),
                "stage_spread_s": measured.spread.summary(),
                "full_gc": {
                    "count": len(measured.full_gc),
                    "longest_s": round(max(measured.full_gc, default=0.0), 4),
                },
            }
            for name, measured in runs.items()
        },
    }


def cells(quick: bool) -> dict[str, list[Cell]]:
    """The matrix: main schedules, batched drafts at the widest, every other distill operator."""
    main = QUICK_SCHEDULES if quick else SCHEDULES
    wide = main[-2]
    return {
        "main": [Cell(schedule) for schedule in main],
        "batched": [Cell(schedule, batched=True) for schedule in main[-2:]],
        "operators": [Cell(wide, operator) for operator in OPERATORS if operator != "topk/vote"],
    }


def tool_set(
    client: Client, cell: Cell, group: str, plan: floor.Plan, peer_api: Any
) -> dict[str, Tool]:
    """The tools of a cell: every variant on the main schedules, fewer elsewhere.

    Batched drafts get ainvoke and invoke; the other operators ainvoke (what is measured there is
    how each operator's calls are orchestrated; the graph's APIs are measured on the schedules);
    ``invoke`` with the SQLite saver runs on the schedules of 16 drafts or more.
    """
    made: dict[str, Tool] = {FLOOR: client.floor(plan), "pdr ainvoke": client.ainvoke(cell)}
    if group == "main":
        made["pdr ainvoke + SQLite"] = client.ainvoke(cell, sqlite=True)
    if group != "operators":
        made["pdr invoke"] = client.invoke(cell)
    if group == "main" and cell.schedule[0] >= 16:  # where the sync saver meets many threads
        made["pdr invoke + SQLite"] = client.invoke(cell, sqlite=True)
    if group == "main":
        made["pdr runner (ledger, checkpoints)"] = client.run_problem(cell)
        if peer_api is not None:
            made[PEER] = client.floor(plan, peer_api)
    return made


def run_matrix(
    client: Client,
    sim: SimServer,
    *,
    quick: bool,
    repeats: int,
    peer_url: str | None,
    progress: Callable[[str], None],
) -> dict[str, list[dict[str, Any]]]:
    """Every cell of the matrix; the peer's pass-through joins the main cells when it runs."""
    watch = GcWatch()
    warmed: set[str] = set()
    peer_api = client.other_client(peer_url) if peer_url else None
    results: dict[str, list[dict[str, Any]]] = {}
    with watch.watching():
        for group, members in cells(quick).items():
            for cell in members:
                progress(f"orchestration: {cell.label}")
                ainvoke = client.ainvoke(cell)

                def tools(
                    plan: floor.Plan, cell: Cell = cell, group: str = group
                ) -> dict[str, Tool]:
                    return tool_set(client, cell, group, plan, peer_api)

                results.setdefault(group, []).append(
                    measure_cell(sim, cell, tools, ainvoke, repeats, watch, warmed)
                )
    return results
