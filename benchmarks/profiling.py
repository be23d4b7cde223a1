"""Where the client's CPU goes in an M=64 round: py-spy samples of pdr and of the floor.

The workload (``benchmarks.workload``) runs in its own process; once it has warmed up it prints
READY, py-spy attaches to it (every thread: under ``invoke`` the work is on pdr's background loop
and LangGraph's executor threads) and the measured repeats start. Each sample is charged to the
package of its innermost frame outside the standard library (time in the standard library is
charged to the library that called it; what the event loop does on its own is "asyncio and the
rest of the standard library"), so the table says which library spends the CPU; the top
functions are the innermost frames themselves. Only the thread holding the GIL is sampled
(py-spy ``--gil``), so threads that wait (on a lock, a queue, the selector, a disk write) are
not counted, and py-spy does not stop the process to sample (``--nonblocking``). The shares are
turned into milliseconds with the CPU time the workload measured itself. Skipped with a line
when py-spy is missing or cannot attach.
"""

from __future__ import annotations

import collections
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

RATE = 250  # samples per second
GROUPS = (
    (
        "openai SDK + HTTP (httpx, httpcore, anyio, h11)",
        ("openai", "httpx", "httpx2", "httpcore", "httpcore2", "anyio", "h11", "sniffio"),
    ),
    (
        "LangChain (langchain_core, langchain_openai)",
        ("langchain_core", "langchain_openai", "langchain", "langsmith"),
    ),
    ("LangGraph", ("langgraph",)),
    ("pydantic", ("pydantic", "pydantic_core")),
    ("SQLite (sqlalchemy, aiosqlite)", ("sqlalchemy", "aiosqlite")),
    ("pdr", ("pdr",)),
    ("asyncio and the rest of the standard library", ("benchmarks",)),
)
FRAME = re.compile(r"\((?P<path>[^()]*?):\d+\)$")


def py_spy() -> str | None:
    found = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    return found if Path(found).is_file() else None


def package_of(frame: str) -> str:
    """The top-level package of a py-spy frame (``func (package/module.py:12)``)."""
    found = FRAME.search(frame)
    path = found["path"] if found else ""
    if "site-packages/" in path:
        path = path.rsplit("site-packages/", 1)[1]
    return path.split("/", 1)[0] if "/" in path else ""


def group_of(frame: str) -> str | None:
    package = package_of(frame)
    for name, packages in GROUPS:
        if package in packages:
            return name
    return None


def summarize(raw: str, cpu_ms_per_run: float) -> dict[str, Any]:
    """Milliseconds of CPU per run by library and by innermost function (shares of the samples)."""
    by_group: collections.Counter[str] = collections.Counter()
    by_function: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = stack.split(";")
        if any("_find_and_load" in f for f in frames):
            continue
        samples = int(count)
        total += samples
        owner = next((g for g in map(group_of, reversed(frames)) if g), "other")
        by_group[owner] += samples
        by_function[FRAME.sub(lambda m: f"({m['path'].rsplit('/', 1)[-1]})", frames[-1])] += samples

    def ms(samples: int) -> float:
        return round(cpu_ms_per_run * samples / max(1, total), 1)

    return {
        "samples": total,
        "cpu_ms_per_run": round(cpu_ms_per_run, 1),
        "by_library_ms": {name: ms(n) for name, n in by_group.most_common()},
        "top_functions_ms": [[name, ms(n)] for name, n in by_function.most_common(12)],
    }


def profile(command: list[str], runs: int) -> dict[str, Any]:
    """Run the workload ``command`` (with --wait) under py-spy; samples of the measured part."""
    spy = py_spy()
    if spy is None:
        return {"skipped": "py-spy is not installed (pip install py-spy, in the dev extra)"}
    with tempfile.TemporaryDirectory() as folder:
        output = Path(folder) / "samples.txt"
        worker = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert worker.stdin is not None and worker.stdout is not None
        if worker.stdout.readline().strip() != "READY":
            worker.kill()
            return {"skipped": "the workload did not start"}
        recorder = subprocess.Popen(
            [
                spy,
                "record",
                "--pid",
                str(worker.pid),
                "--rate",
                str(RATE),
                "--format",
                "raw",
                "--gil",
                "--nonblocking",
                "--output",
                str(output),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        time.sleep(1.0)  # let py-spy attach
        worker.stdin.write("go\n")
        worker.stdin.flush()
        measured = json.loads(worker.stdout.read().strip().splitlines()[-1])
        worker.wait()
        _, errors = recorder.communicate(timeout=60)
        if not output.is_file():
            return {"skipped": f"py-spy could not sample: {errors.strip()[-300:]}"}
        return summarize(output.read_text(), 1000 * measured["cpu_s"] / runs)
