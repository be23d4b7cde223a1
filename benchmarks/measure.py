"""What every benchmark shares: interleaved repeats, medians with their range, ratios, the machine.

A figure is never a bare number of seconds: each is a ratio against a baseline measured in the same
run, its repeats interleaved with the baseline's (repeat 1 of every tool, then repeat 2 of every
tool, ...), so every tool sees the same load. ``Series`` keeps the repeats of one tool;
``ratio`` divides the median of one series by the median of its baseline and gives the range of
the per-repeat ratios (repeat i against repeat i of the baseline). ``GcWatch`` counts the garbage
collector's pauses during a measurement (a full collection stops every coroutine of the process).
"""

from __future__ import annotations

import gc
import os
import platform
import statistics
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from typing import Any

VERSIONED = (
    "pdr",
    "langgraph",
    "langgraph-checkpoint-sqlite",
    "langchain-core",
    "langchain-openai",
    "openai",
    "httpx",
    "llama-cpp-python",
    "optillm",
)


@dataclass
class Series:
    """The repeats of one measured quantity."""

    values: list[float] = field(default_factory=list)

    def add(self, value: float) -> None:
        self.values.append(value)

    @property
    def median(self) -> float:
        return statistics.median(self.values) if self.values else float("nan")

    def summary(self) -> dict[str, Any]:
        """Median, min, max and every repeat (rounded for the JSON file)."""
        if not self.values:
            return {"median": None, "min": None, "max": None, "n": 0, "values": []}
        return {
            "median": round(self.median, 4),
            "min": round(min(self.values), 4),
            "max": round(max(self.values), 4),
            "n": len(self.values),
            "values": [round(v, 4) for v in self.values],
        }


def ratio(series: Series, baseline: Series) -> dict[str, Any]:
    """``series`` over ``baseline``: ratio of the medians, and the range of paired ratios."""
    if not series.values or not baseline.values:
        return {"median": None, "min": None, "max": None}
    paired = [a / b for a, b in zip(series.values, baseline.values, strict=False) if b]
    return {
        "median": round(series.median / baseline.median, 3),
        "min": round(min(paired), 3) if paired else None,
        "max": round(max(paired), 3) if paired else None,
    }


def interleaved(repeats: int, tools: Iterable[str]) -> Iterator[tuple[int, str]]:
    """(repeat, tool) in interleaved order; the order of the tools rotates every repeat."""
    names = list(tools)
    for repeat in range(repeats):
        shift = repeat % len(names) if names else 0
        for name in names[shift:] + names[:shift]:
            yield repeat, name


class GcWatch:
    """Pauses of the garbage collector while it is installed (``gc.callbacks``)."""

    def __init__(self) -> None:
        self.pauses: list[tuple[int, float, float]] = []  # (generation, start, seconds)
        self._started = 0.0

    def _callback(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._started = time.monotonic()
        else:
            self.pauses.append(
                (int(info["generation"]), self._started, time.monotonic() - self._started)
            )

    @contextmanager
    def watching(self) -> Iterator[GcWatch]:
        gc.callbacks.append(self._callback)
        try:
            yield self
        finally:
            gc.callbacks.remove(self._callback)

    def full_between(self, start: float, end: float) -> list[float]:
        """Durations of the full (generation 2) collections that started in [start, end]."""
        return [s for g, at, s in self.pauses if g == 2 and start <= at <= end]


def timed(action: Callable[[], Any]) -> tuple[float, float, float]:
    """Run ``action``; returns (monotonic start, monotonic end, CPU seconds of this process)."""
    cpu = time.process_time()
    start = time.monotonic()
    action()
    end = time.monotonic()
    return start, end, time.process_time() - cpu


def load() -> str:
    """The load averages (1, 5, 15 min) as ``uptime`` shows them."""
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f}, {five:.2f}, {fifteen:.2f}"


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine() -> dict[str, Any]:
    """Where and when the figures were taken, and with which versions."""
    versions: dict[str, str | None] = {}
    for name in VERSIONED:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "versions": versions,
    }
