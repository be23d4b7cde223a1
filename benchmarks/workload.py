"""One workload in a process of its own, for peak memory, the profiler and the scale test.

``python -m benchmarks.workload KIND --url URL [options]`` runs one of:

- ``pdr-round``: PDR on one cell (``--schedule``, ``--operator``, ``--mode ainvoke|invoke``),
  ``--repeats`` times after one warm-up run;
- ``floor-round``: the floor replaying ``--plan`` (a JSON plan) the same number of times;
- ``pdr-eval``: a ``--problems``-problem evaluation by pdr's harness (generated problems, PDR
  ``--schedule`` with the summary, ledger and checkpoints in ``--workdir``), every problem in
  flight and at most ``--cap`` calls;
- ``floor-eval``: the floor replaying ``--plan`` once per problem, under the same cap.

It prints one JSON line: peak RSS (the high-water mark, VmHWM), RSS after the imports, wall and
CPU seconds of the measured part, and for the rounds each run's wall time and the full garbage
collections during it. With ``--freeze`` a round process calls ``pdr.heap.freeze_imports()``
after its warm-up. With ``--wait`` it prints ``READY`` after the warm-up and waits for a line on
stdin before measuring (the profiler attaches in between).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any


def rss_mb() -> float:
    """Resident memory now (VmRSS), in MB."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def peak_rss_mb() -> float:
    """The process's peak resident memory so far (VmHWM), in MB.

    Not ``ru_maxrss``: a child keeps the high-water mark of the process it was forked from.
    """
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0


def load_plan(path: str) -> Any:
    from benchmarks.floor import Call

    stages = json.loads(Path(path).read_text())
    return [[Call(**call) for call in stage] for stage in stages]


def pdr_round(args: argparse.Namespace) -> Any:
    from benchmarks.tools import Cell, Client

    cell = Cell(tuple(int(m) for m in args.schedule.split(",")), args.operator)
    client = Client(args.url, args.spec, Path(tempfile.mkdtemp()))
    return client.ainvoke(cell) if args.mode == "ainvoke" else client.invoke(cell)


def floor_round(args: argparse.Namespace) -> Any:
    from benchmarks import floor

    plan = load_plan(args.plan)
    runner = asyncio.Runner()

    async def make() -> Any:
        return floor.client(args.url)

    api = runner.run(make())
    return lambda: runner.run(floor.run_plan(api, plan))


def pdr_eval(args: argparse.Namespace) -> dict[str, Any]:
    from pdr.evaluation.configs import Config, EvalSpec
    from pdr.evaluation.harness import Harness
    from pdr.evaluation.synthetic import load
    from pdr.store.ledger import Ledger

    workdir = Path(args.workdir or tempfile.mkdtemp())
    schedule = [int(m) for m in args.schedule.split(",")]
    spec = EvalSpec(
        dataset=load(f"synthetic:n={args.problems}"),
        model=args.spec,
        ladders=[Config("pdr", {"schedule": schedule})],
        context={"max_concurrency": args.cap, "max_retries": 0},
    )
    ledger = Ledger(workdir / "ledger.sqlite")
    # Every problem in flight at once: the 64-call cap is then the only limit.
    harness = Harness(spec, ledger, concurrency=args.problems, checkpoints=workdir / "ckpt.sqlite")
    report = asyncio.run(harness.run())
    ledger.close()
    return {
        "runs": sum(row.n for row in report.rows),
        "failed_runs": sum(row.failed for row in report.rows),
    }


def floor_eval(args: argparse.Namespace) -> dict[str, Any]:
    from benchmarks import floor

    plan = load_plan(args.plan)

    async def evaluate() -> int:
        api = floor.client(args.url)
        calls = asyncio.Semaphore(args.cap)

        async def one() -> int:
            return await floor.run_plan(api, plan, calls)

        return sum(await asyncio.gather(*(one() for _ in range(args.problems))))

    return {"calls": asyncio.run(evaluate())}


def main() -> None:
    parser = argparse.ArgumentParser(description="one benchmark workload in its own process")
    parser.add_argument("kind", choices=["pdr-round", "floor-round", "pdr-eval", "floor-eval"])
    parser.add_argument("--url", required=True)
    parser.add_argument("--spec", default="")
    parser.add_argument("--plan", default="")
    parser.add_argument("--schedule", default="64,1")
    parser.add_argument("--operator", default="topk/vote")
    parser.add_argument("--mode", choices=["ainvoke", "invoke"], default="ainvoke")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--problems", type=int, default=200)
    parser.add_argument("--cap", type=int, default=64)
    parser.add_argument("--workdir", default="")
    parser.add_argument("--wait", action="store_true")
    parser.add_argument("--freeze", action="store_true")
    args = parser.parse_args()
    if args.kind.endswith("-round"):
        from benchmarks.measure import GcWatch

        run = pdr_round(args) if args.kind == "pdr-round" else floor_round(args)
        after_imports = rss_mb()
        run()  # warm-up
        if args.freeze:
            from pdr.heap import freeze_imports

            freeze_imports()
        if args.wait:
            print("READY", flush=True)
            sys.stdin.readline()
        watch = GcWatch()
        walls, pauses = [], []
        cpu, start = time.process_time(), time.monotonic()
        with watch.watching():
            for _ in range(args.repeats):
                begun = time.monotonic()
                run()
                walls.append(round(time.monotonic() - begun, 4))
                pauses.append([round(s, 4) for s in watch.full_between(begun, time.monotonic())])
        extra: dict[str, Any] = {"run_walls_s": walls, "full_gc_s": pauses}
    else:
        if args.kind == "pdr-eval":
            import pdr.evaluation.harness  # noqa: F401  (imports first: RSS after imports)
        after_imports = rss_mb()
        cpu, start = time.process_time(), time.monotonic()
        extra = pdr_eval(args) if args.kind == "pdr-eval" else floor_eval(args)
    print(
        json.dumps(
            {
                "wall_s": round(time.monotonic() - start, 4),
                "cpu_s": round(time.process_time() - cpu, 4),
                "start": start,
                "rss_after_imports_mb": round(after_imports, 1),
                "peak_rss_mb": round(peak_rss_mb(), 1),
                **extra,
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    main()
