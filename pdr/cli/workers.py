"""``pdr eval --workers N``, ``--join EXPERIMENT`` and ``--status EXPERIMENT``.

``--workers N`` starts N worker processes on this machine, each ``pdr eval --join`` of the same
experiment (the ledger's URL and the checkpoint location travel in their environment, so no
password shows in a process list), waits for them, and says which ended badly; the cells of a
worker that died are finished by the others once its claims lapse (``pdr.store.cells``).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from pdr.evaluation.configs import EvalError
from pdr.evaluation.harness import Harness
from pdr.evaluation.workers import queue_status
from pdr.settings import checkpoints_location
from pdr.store.ledger import Ledger


def start_workers(
    harness: Harness, workers: int, concurrency: int, checkpoints: str | Path | None
) -> list[subprocess.Popen[bytes]]:
    """Start ``workers`` processes joining the harness's experiment."""
    env = {
        **os.environ,
        "PDR_DATABASE_URL": harness.ledger.url,
        "PDR_CHECKPOINTS": str(checkpoints_location(checkpoints)),
    }
    command = [sys.executable, "-m", "pdr.cli", "eval", "--join", str(harness.experiment_id)]
    command += ["--concurrency", str(concurrency), "--no-progress"]
    return [
        subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
        for _ in range(workers)
    ]


def wait_for(children: list[subprocess.Popen[bytes]], harness: Harness, errors: Console) -> None:
    """Wait for every worker; raise EvalError when cells are left unfinished.

    A worker that died is named on stderr; when the others finished its cells, that is all.
    """
    try:
        while any(child.poll() is None for child in children):  # reaps each as it ends
            time.sleep(0.2)
        codes = [child.wait() for child in children]
    except KeyboardInterrupt:
        for child in children:
            if child.poll() is None:
                child.send_signal(signal.SIGINT)
        for child in children:
            child.wait()
        raise
    for number, (child, code) in enumerate(zip(children, codes, strict=True), start=1):
        if code != 0:
            how = f"signal {-code}" if code < 0 else f"status {code}"
            errors.print(f"worker {number} (pid {child.pid}) ended with {how}", highlight=False)
    left = harness.queue.state()
    if left.waiting or left.running:
        raise EvalError(
            f"{left.waiting + left.running} of {left.total} cells are not finished; run the same "
            f"command again (or `pdr eval --join {harness.experiment_id}`) to finish them"
        )
    if any(codes):
        errors.print("the other workers finished the cells of those that ended", highlight=False)


def print_status(out: Console, ledger: Ledger, experiment: str) -> None:
    """Print what ``pdr eval --status`` shows."""
    status = queue_status(ledger, experiment)
    table = Table(title=f"{status.name}: cells", title_justify="left")
    for header in ("phase", "done", "in flight", "waiting"):
        table.add_column(header, justify="left" if header == "phase" else "right")
    for phase, done, running, waiting in status.phases:
        table.add_row(phase, str(done), str(running), str(waiting))
    out.print(table)
    if status.workers:
        held = Table(title="in flight per worker", title_justify="left")
        for header in ("host", "pid", "cells", "last heartbeat (UTC)"):
            held.add_column(header, justify="right" if header in ("pid", "cells") else "left")
        for load in status.workers:
            beat = load.heartbeat_at.strftime("%H:%M:%S")
            held.add_row(load.host, str(load.pid), str(load.running), beat)
        out.print(held)
    else:
        out.print("no worker holds a cell now")
    accuracy = status.accuracy
    shown = "-" if accuracy is None else f"{100 * accuracy:.1f}%"
    out.print(
        f"finished runs: {status.finished}, correct: {status.correct}, accuracy: {shown}; "
        f"a worker's claims lapse {status.lease_timeout_s:g} s after its last heartbeat",
        highlight=False,
    )
