"""Start-up, where a user feels it: ``pdr --help`` and the first request of ``pdr run``.

Both are timed as whole processes, interleaved with the interpreter's own start
(``python -c pass``, the baseline). ``pdr run`` runs against the simulated server with a short
reply, so the time from the command to the server's first request (on the shared monotonic clock)
is exact, and the time from the last reply to the process's exit is its shut-down. The imports
behind the figures come from ``python -X importtime``: the modules that cost most (cumulative).

``--baseline PATH`` (a folder holding another version's ``pdr`` package, e.g. from
``git archive main pdr | tar -x -C PATH``) adds the same two commands run with that version, in
the same turns, so a change's effect on start-up is a ratio of one run too.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.measure import Series, interleaved, ratio
from benchmarks.sim_server import SimServer, Timing

QUICK_REPLY = Timing(ttft=0.01, token=0.0001, tokens=16)
PDR = str(Path(sys.executable).with_name("pdr"))


def run_args(sim: SimServer, workdir: Path) -> list[str]:
    return [
        "run",
        "--model",
        sim.spec(QUICK_REPLY),
        "--schedule",
        "2,1",
        "--max-tokens",
        "16",
        "--db",
        str(workdir / "ledger.sqlite"),
        "--checkpoints",
        str(workdir / "ckpt.sqlite"),
        "--quiet",
        "What is 17 * 23?",
    ]


def timed_process(command: list[str], env: dict[str, str] | None, cwd: Path) -> tuple[float, float]:
    """(monotonic start, seconds) of a command run to its end, output discarded."""
    start = time.monotonic()
    subprocess.run(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True, env=env, cwd=cwd
    )
    return start, time.monotonic() - start


def import_costs(module: str, top: int = 12) -> list[dict[str, Any]]:
    """The modules whose import costs most, cumulative, as ``python -X importtime`` reports."""
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", f"import {module}"],
        capture_output=True,
        text=True,
        check=True,
    )
    rows: list[tuple[float, str]] = []
    for line in done.stderr.splitlines():
        if not line.startswith("import time:") or "|" not in line:
            continue
        _, cumulative, name = (part.strip() for part in line.split(":", 1)[1].split("|"))
        if cumulative.isdigit():
            rows.append((int(cumulative) / 1e6, name))
    rows.sort(reverse=True)
    return [{"module": name, "cumulative_s": round(seconds, 3)} for seconds, name in rows[:top]]


def measure(sim: SimServer, repeats: int, baseline: Path | None = None) -> dict[str, Any]:
    """Interleaved repeats of the processes; ratios against ``python -c pass``."""
    with tempfile.TemporaryDirectory() as folder:
        workdir = Path(folder)  # also the working directory: no `pdr` folder on sys.path there
        commands: dict[str, tuple[list[str], dict[str, str] | None]] = {
            "python -c pass": ([sys.executable, "-c", "pass"], None),
            "pdr --help": ([PDR, "--help"], None),
            "pdr run": ([PDR, *run_args(sim, workdir)], None),
        }
        if baseline is not None:
            other = {**os.environ, "PYTHONPATH": str(baseline.resolve())}
            cli = [sys.executable, "-c", "import sys; from pdr.cli import app; app()"]
            commands["baseline pdr --help"] = ([*cli, "--help"], other)
            commands["baseline pdr run"] = ([*cli, *run_args(sim, workdir / "baseline")], other)
        series = {name: Series() for name in commands}
        first_request = {name: Series() for name in commands if name.endswith("run")}
        shutdown = {name: Series() for name in first_request}
        for command, env in commands.values():
            timed_process(command, env, workdir)  # warm the file cache
        for _, name in interleaved(repeats, commands):
            sim.reset()
            start, seconds = timed_process(*commands[name], workdir)
            series[name].add(seconds)
            if name in first_request:
                log = sim.log()
                first_request[name].add(min(e["arrived"] for e in log) - start)
                shutdown[name].add(start + seconds - max(e["finished"] for e in log))
    base = series["python -c pass"]
    return {
        "seconds": {name: s.summary() for name, s in series.items()},
        "over_python": {name: ratio(s, base) for name, s in series.items() if s is not base},
        "first_request_s": {name: s.summary() for name, s in first_request.items()},
        "after_last_reply_s": {name: s.summary() for name, s in shutdown.items()},
        "imports_pdr_cli": import_costs("pdr.cli"),
    }
