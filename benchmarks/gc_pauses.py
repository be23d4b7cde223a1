"""Full garbage collections during a round, with and without ``pdr.heap.freeze_imports()``.

The "random_k anomaly" of the issue (PDR [64, 1] with random_k took 2.8 s instead of 1.5 s in 5
of 10 repeats, its calls starting up to 1.1 s apart) is a full collection landing in the middle
of a round's fan-out: it walks every object of the process (about 200,000 once LangGraph and
LangChain are imported) while every coroutine waits, and a round's replies live long enough to
be promoted, so one comes about every second M = 64 round; in a benchmark that runs its tools in
a fixed order the same tool keeps being hit. Here two kinds of processes run the same cell (PDR
[64, 1] with random_k, ``ainvoke``) in turns: one as imported, one that froze its heap after
the warm-up. Each reports every run's wall time and the full collections that started during
it.
"""

from __future__ import annotations

import statistics
from typing import Any

from benchmarks.scale import workload
from benchmarks.sim_server import SimServer, Timing


def measure(
    sim: SimServer, timing: Timing, *, pairs: int, runs: int, wide: int = 64
) -> dict[str, Any]:
    """``pairs`` times a process as imported, then one that froze its heap; ``runs`` rounds each.

    ``timing`` is the server's for these calls: the pauses do not depend on it, so it can be short.
    """
    cell = ("--schedule", f"{wide},1", "--operator", "random_k")
    found: dict[str, dict[str, list[Any]]] = {
        "as imported": {"walls": [], "pauses": []},
        "freeze_imports()": {"walls": [], "pauses": []},
    }
    for _ in range(pairs):
        for name, extra in (("as imported", ()), ("freeze_imports()", ("--freeze",))):
            result = workload(
                "pdr-round",
                "--url",
                sim.url,
                "--spec",
                sim.spec(timing),
                *cell,
                "--repeats",
                str(runs),
                *extra,
            )
            found[name]["walls"] += result["run_walls_s"]
            found[name]["pauses"] += result["full_gc_s"]
    summary = {}
    for name, runs_found in found.items():
        walls, pauses = runs_found["walls"], runs_found["pauses"]
        hit = [wall for wall, paused in zip(walls, pauses, strict=True) if paused]
        clean = [wall for wall, paused in zip(walls, pauses, strict=True) if not paused]
        all_pauses = [p for run in pauses for p in run]
        summary[name] = {
            "runs": len(walls),
            "runs_with_a_full_collection": len(hit),
            "full_collection_s": {
                "median": round(statistics.median(all_pauses), 4) if all_pauses else None,
                "max": round(max(all_pauses), 4) if all_pauses else None,
            },
            "wall_s_runs_with": round(statistics.median(hit), 4) if hit else None,
            "wall_s_runs_without": round(statistics.median(clean), 4) if clean else None,
            "wall_s_max": round(max(walls), 4),
            "wall_s_median": round(statistics.median(walls), 4),
        }
    cell_name = f"[{wide}, 1] random_k, ainvoke"
    return {"cell": cell_name, "timing": timing.model_name(), "processes": summary}
