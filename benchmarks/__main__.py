"""``python -m benchmarks``: every benchmark, written to a JSON file and a markdown table.

``python -m benchmarks`` (the full run, about 10 minutes on 2 cores) writes
``benchmarks/results/results.json`` and ``results.md``; ``--quick`` runs every section in CI's
time (short replies, few repeats, the small model; it asserts nothing about speed) and writes to
``benchmarks/out/`` unless ``--out`` says otherwise. ``--only startup,orchestration,...`` picks
sections. Each section notes the load average before and after it.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from benchmarks import floor, gc_pauses, orchestration, peer, profiling, report, scale, startup
from benchmarks.measure import Series, interleaved, machine, ratio, timed
from benchmarks.sim_server import SimServer, Timing
from benchmarks.tools import Cell, Client
from pdr.heap import freeze_imports

HERE = Path(__file__).resolve().parent
# Where only CPU time matters (the profile, garbage collections), short replies keep it quick.
SHORT = Timing(ttft=0.05, token=0.0002, tokens=256)
SECTIONS = ("startup", "orchestration", "gc", "profile", "scale", "embedded")


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def mars(client: Client, sim: SimServer, optillm_url: str, repeats: int) -> dict[str, Any]:
    """optillm's mars approach on one problem, against the floor replaying its calls."""
    api = client.other_client(optillm_url)
    model = "mars-" + sim.timing.model_name()

    async def ask() -> None:
        await api.chat.completions.create(
            model=model,
            messages=[{"role": "user", "content": "What is 17 * 23?"}],
            max_tokens=sim.timing.tokens,
        )

    def run_mars() -> None:
        client.runner.run(ask())

    sim.reset()
    run_mars()
    plan = floor.plan_from_log(sim.log())
    tools = {"mars": run_mars, "asyncio floor": client.floor(plan)}
    walls = {name: Series() for name in tools}
    ideal = Series()
    for _, name in interleaved(repeats, tools):
        sim.reset()
        start, end, _ = timed(tools[name])
        walls[name].add(end - start)
        if name == "mars":
            ideal.add(floor.ideal(sim.log()))
    return {
        "calls": sum(len(stage) for stage in plan),
        "stages": [len(stage) for stage in plan],
        "wall_s": walls["mars"].summary(),
        "over_ideal": ratio(walls["mars"], ideal),
        "over_floor": ratio(walls["mars"], walls["asyncio floor"]),
    }


def run_orchestration(
    client: Client, sim: SimServer, work: Path, quick: bool, repeats: int, skipped: list[str]
) -> dict[str, Any]:
    result: dict[str, Any] = {"timing": sim.timing.model_name(), "repeats": repeats}
    python = peer.peer_python()
    if python is None:
        skipped.append(f"optillm (pass-through and mars): {peer.missing_reason()}")
        result["cells"] = orchestration.run_matrix(
            client, sim, quick=quick, repeats=repeats, peer_url=None, progress=log
        )
        return result
    with peer.Optillm(python, sim.url, work / "optillm.log") as optillm:
        result["cells"] = orchestration.run_matrix(
            client, sim, quick=quick, repeats=repeats, peer_url=optillm.url, progress=log
        )
        log("orchestration: optillm mars")
        result["mars"] = mars(client, sim, optillm.url, max(1, repeats // 2))
    return result


def run_profile(sim: SimServer, client: Client, work: Path, runs: int) -> dict[str, Any]:
    plan = [
        [replace(call, model=SHORT.model_name()) for call in stage]
        for stage in scale.logged_plan(client, sim, Cell((64, 1)))
    ]
    plan_file = scale.save_plan(plan, work / "profile-plan.json")
    base = [sys.executable, "-m", "benchmarks.workload"]
    common = ["--url", sim.url, "--repeats", str(runs), "--wait"]
    found: dict[str, Any] = {"timing": SHORT.model_name()}
    for name, args in (
        ("pdr ainvoke", ["pdr-round", "--spec", sim.spec(SHORT), "--mode", "ainvoke", "--freeze"]),
        ("pdr invoke", ["pdr-round", "--spec", sim.spec(SHORT), "--mode", "invoke", "--freeze"]),
        ("asyncio floor", ["floor-round", "--plan", plan_file]),
    ):
        log(f"profile: {name}")
        found[name] = profiling.profile([*base, *args, *common], runs)
    return found


def run_embedded(quick: bool) -> dict[str, Any]:
    args = (
        ["--model", "embedded:fast", "--drafts", "2", "--tokens", "8", "--repeats", "1"]
        if quick
        else [
            "--model",
            "embedded",
            "--drafts",
            "4",
            "--tokens",
            "24",
            "--repeats",
            "3",
            "--budget-s",
            "80",
        ]
    )
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.embedded", *args],
        capture_output=True,
        text=True,
        cwd=HERE.parent,
    )
    if done.returncode != 0:
        reason = (done.stderr.strip().splitlines() or ["no output"])[-1]
        return {"skipped": f"the embedded model could not run: {reason}"}
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="CI's time: short, few repeats")
    parser.add_argument("--out", type=Path, help="folder for results.json and results.md")
    parser.add_argument("--only", default=",".join(SECTIONS), help="sections, comma-separated")
    parser.add_argument("--repeats", type=int, help="repeats of each orchestration tool")
    parser.add_argument(
        "--baseline",
        type=Path,
        help="start-up: also time the pdr package in this folder (another version)",
    )
    args = parser.parse_args()
    chosen = [name.strip() for name in args.only.split(",") if name.strip()]
    unknown = sorted(set(chosen) - set(SECTIONS))
    if unknown:
        parser.error(
            f"--only: unknown section(s) {', '.join(unknown)}; choose from {', '.join(SECTIONS)}"
        )
    out = args.out or (HERE / "out" if args.quick else HERE / "results")
    repeats = args.repeats or (2 if args.quick else 3)
    # A terminated run still stops its servers (the `with` blocks below run their exits).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    timing = Timing(ttft=0.02, token=0.0001, tokens=32) if args.quick else Timing()
    command = "python -m benchmarks" + (" --quick" if args.quick else "")
    results: dict[str, Any] = {
        "command": command,
        "quick": args.quick,
        "machine": machine(),
        "load": {},
        "skipped": [],
    }

    def section(name: str, action: Callable[[], Any]) -> None:
        if name not in chosen:
            return
        log(f"{name} (load {os.getloadavg()[0]:.2f})")
        start = os.getloadavg()[0]
        results[name] = action()
        results["load"][name] = {"start": start, "end": os.getloadavg()[0]}

    with SimServer(timing) as sim, tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        client = Client(sim.url, sim.spec(), work)
        # What the README advises a long-lived program to do (pdr's command line does it): the
        # tools below then never wait on a full collection of the import-time heap ("gc" shows
        # what they would have waited).
        freeze_imports()
        try:
            section("startup", lambda: startup.measure(sim, 2 if args.quick else 3, args.baseline))
            section(
                "orchestration",
                lambda: run_orchestration(
                    client, sim, work, args.quick, repeats, results["skipped"]
                ),
            )
            section(
                "gc", lambda: gc_pauses.measure(sim, SHORT, pairs=1, runs=3 if args.quick else 8)
            )
            section("profile", lambda: run_profile(sim, client, work, 2 if args.quick else 6))
            section(
                "scale",
                lambda: scale.measure(
                    client,
                    sim,
                    problems=20 if args.quick else 200,
                    cap=64,
                    wide=4 if args.quick else 64,
                ),
            )
        finally:
            client.close()
    section("embedded", lambda: run_embedded(args.quick))
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(results, indent=1) + "\n")
    (out / "results.md").write_text(report.render(results))
    log(f"wrote {out / 'results.json'} and {out / 'results.md'}")


if __name__ == "__main__":
    main()
