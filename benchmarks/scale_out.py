"""Evaluation workers x model replicas: throughput against the ideal, and the ledger's write rate.

``python -m benchmarks.scale_out`` evaluates 400 generated problems with SR (two calls a run, the
second waiting for the first) through ``pdr eval --workers W`` for W in 1, 2, 4 against 1 and 3
simulated replicas, on a SQLite ledger and on a PostgreSQL one, and reports each evaluation's
throughput as a ratio to the ideal the replicas allow. Each replica is the OpenAI-compatible
loopback server of the tests (``tests/openai_server.py``) with ``--slots`` requests served at once
(the others queue, as on a vLLM server at its batch size) and a fixed service time, all replicas in
one server process of their own. The ideal of an evaluation is its calls' total service time
spread over every slot of every replica (and never less than one run's two calls in a row):

    ideal = max(calls x latency / (replicas x slots), 2 x latency)

The wall time is the ledger's own: from the first run's start to the last run's end (so the
workers' start-up is not counted). Then the ledger alone: call rows written as the runner writes
them (each attempt stored when it starts and completed when it ends, one transaction each) by 1
and 4 processes at once, in rows per second, beside the call rate the evaluations needed.

``--quick`` runs a small version (40 problems, one database) in well under a minute.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ITEMS = 400
CONFIG = "sr:rounds=2,max_tokens=32,kappa=32"


def serve(count: int, slots: int, latency: float) -> None:
    """Run ``count`` replicas in this process; print their base URLs, serve until killed."""
    from tests.openai_server import FakeOpenAIServer

    servers = [FakeOpenAIServer(latency=latency, slots=slots) for _ in range(count)]
    for server in servers:
        server.__enter__()
    print(",".join(server.url for server in servers), flush=True)
    while True:
        time.sleep(3600)


class Replicas:
    """A server process holding ``count`` replicas (a context manager)."""

    def __init__(self, count: int, slots: int, latency: float) -> None:
        self.args = [str(count), str(slots), str(latency)]
        self.process: subprocess.Popen[str] | None = None
        self.urls = ""

    def __enter__(self) -> Replicas:
        command = [sys.executable, "-m", "benchmarks.scale_out", "serve", *self.args]
        self.process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
        assert self.process.stdout is not None
        self.urls = self.process.stdout.readline().strip()
        return self

    def __exit__(self, *exc: object) -> None:
        assert self.process is not None
        self.process.kill()
        self.process.wait()


def evaluate(
    db: str, checkpoints: str, urls: str, workers: int, concurrency: int, items: int
) -> dict[str, Any]:
    """One ``pdr eval`` of ``items`` problems; its ledger's span, runs and call rows."""
    from pdr.store.ledger import Ledger
    from pdr.store.ledger_models import Call, Run

    command = [sys.executable, "-m", "pdr.cli", "eval", "--no-progress"]
    command += ["--dataset", f"synthetic:level=1,n={items},seed=0", "--method", "sr"]
    command += ["--config", CONFIG, "--model", f"vllm:fake@{urls}", "--db", db]
    command += ["--checkpoints", checkpoints, "--workers", str(workers)]
    command += ["--concurrency", str(concurrency)]
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    ledger = Ledger(db)
    from sqlalchemy import func, select
    from sqlalchemy.orm import Session

    with Session(ledger.engine) as session:
        first, last, runs = session.execute(
            select(func.min(Run.created_at), func.max(Run.finished_at), func.count(Run.id))
        ).one()
        calls = session.scalar(select(func.count(Call.id)).where(Call.error.is_(None)))
        failed = session.scalar(select(func.count(Run.id)).where(Run.status != "done"))
    ledger.close()
    if first is None or last is None:
        raise RuntimeError(f"no finished run in {db}: the evaluation did not run")
    return {
        "span_s": (last - first).total_seconds(),
        "runs": int(runs),
        "calls": int(calls or 0),
        "failed_runs": int(failed or 0),
    }


def _write_rows(db: str, rows: int, tag: str, start: Any) -> None:
    from pdr.budget import CallRecord
    from pdr.store.ledger import Ledger

    ledger = Ledger(db)
    thread = f"bench-{tag}"
    ledger.start_run(thread_id=thread, graph="sr", context={}, problem="p")
    start.wait()
    for number in range(rows):
        record = CallRecord(
            role="draft",
            round=1,
            index=number,
            attempt=0,
            model="vllm:fake@http://127.0.0.1:1/v1",
            input_tokens=40,
            output_tokens=32,
            reasoning_tokens=0,
            cached_tokens=0,
            samples=1,
            latency_s=0.1,
            estimated=False,
            error="in flight",
            attempt_id=f"{tag}-{number}",
        )
        ledger.record_call(thread, record)  # stored when it starts
        ledger.record_call(thread, {**record, "error": None})  # completed when it ends
    ledger.close()


def ledger_rate(db: str, processes: int, rows: int) -> float:
    """Call rows per second written (started and completed) by ``processes`` at once."""
    context = multiprocessing.get_context("spawn")
    start = context.Event()
    children = [
        context.Process(target=_write_rows, args=(db, rows, f"{processes}-{n}", start))
        for n in range(processes)
    ]
    for child in children:
        child.start()
    time.sleep(3.0)  # every child has opened the ledger and started its run
    began = time.perf_counter()
    start.set()
    for child in children:
        child.join()
    return processes * rows / (time.perf_counter() - began)


def databases(kinds: list[str], folder: Path) -> Any:
    """(kind, function making a fresh ledger URL and checkpoint location) per database."""
    made = []
    postgres = None
    if "postgresql" in kinds:
        from tests.postgres import PostgresServer, server_binaries

        binaries = server_binaries()
        if binaries is None:
            raise SystemExit("no PostgreSQL server binaries: apt-get install postgresql")
        postgres = PostgresServer(binaries)
        postgres.start()
    counter = iter(range(10**6))

    def sqlite() -> tuple[str, str]:
        number = next(counter)
        return str(folder / f"l{number}.sqlite"), str(folder / f"c{number}.sqlite")

    def pg() -> tuple[str, str]:
        assert postgres is not None
        url = postgres.create_schema()
        return url, url

    for kind in kinds:
        made.append((kind, sqlite if kind == "sqlite" else pg))
    return made, postgres


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.scale_out")
    parser.add_argument("--quick", action="store_true", help="40 problems, SQLite only")
    parser.add_argument("--latency", type=float, default=0.1, help="seconds per call")
    parser.add_argument("--slots", type=int, default=8, help="calls a replica serves at once")
    parser.add_argument("--concurrency", type=int, default=8, help="runs in flight per worker")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/out/scale_out.json"))
    args, rest = parser.parse_known_args()
    if rest[:1] == ["serve"]:
        serve(int(rest[1]), int(rest[2]), float(rest[3]))
        return
    items = 40 if args.quick else ITEMS
    kinds = ["sqlite"] if args.quick else ["sqlite", "postgresql"]
    rows = 200 if args.quick else 1000
    folder = Path(tempfile.mkdtemp(prefix="pdr-scale-out-"))
    made, postgres = databases(kinds, folder)
    results: dict[str, Any] = {"items": items, "latency_s": args.latency, "slots": args.slots}
    results["concurrency_per_worker"] = args.concurrency
    results["load_before"] = os.getloadavg()[0]
    table = []
    try:
        for replicas in (1, 3):
            with Replicas(replicas, args.slots, args.latency) as served:
                for kind, fresh in made:
                    for workers in (1, 2, 4):
                        db, checkpoints = fresh()
                        found = evaluate(
                            db, checkpoints, served.urls, workers, args.concurrency, items
                        )
                        ideal = max(
                            found["calls"] * args.latency / (replicas * args.slots),
                            2 * args.latency,
                        )
                        row = {
                            "db": kind,
                            "replicas": replicas,
                            "workers": workers,
                            **found,
                            "ideal_s": round(ideal, 2),
                            "ratio_to_ideal": round(ideal / found["span_s"], 3),
                            "calls_per_s": round(found["calls"] / found["span_s"], 1),
                        }
                        print(json.dumps(row), file=sys.stderr, flush=True)
                        table.append(row)
        rates = []
        for kind, fresh in made:
            for processes in (1, 4):
                db, _ = fresh()
                rate = ledger_rate(db, processes, rows)
                row = {"db": kind, "processes": processes, "rows_per_s": round(rate, 1)}
                print(json.dumps(row), file=sys.stderr, flush=True)
                rates.append(row)
    finally:
        if postgres is not None:
            postgres.stop()
    results.update(throughput=table, ledger=rates, load_after=os.getloadavg()[0])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(markdown(results))


def markdown(results: dict[str, Any]) -> str:
    """The two tables of the note."""
    lines = [
        "| db | replicas | workers | runs | calls | wall s | ideal s | ratio to ideal | calls/s |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results["throughput"]:
        lines.append(
            f"| {r['db']} | {r['replicas']} | {r['workers']} | {r['runs']} | {r['calls']} | "
            f"{r['span_s']:.1f} | {r['ideal_s']:.1f} | {r['ratio_to_ideal']:.2f} | "
            f"{r['calls_per_s']:.0f} |"
        )
    lines += ["", "| db | writer processes | call rows/s (each row started and completed) |"]
    lines.append("|---|---|---|")
    for r in results["ledger"]:
        lines.append(f"| {r['db']} | {r['processes']} | {r['rows_per_s']:.0f} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
