"""Figures of an experiment: accuracy against B_seq and against B_tot, one line per method.

Each figure has two panels sharing the accuracy axis: accuracy versus the mean achieved B_seq
(latency) and versus the mean achieved B_tot (cost), both on a log-scale token axis. Each method
is one line through its budget levels, with its 95% Wilson interval as a vertical bar at every
point. Written as PNG and SVG with matplotlib's Agg backend (no display needed).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # before pyplot: files only, no display, safe in threads and CI

import matplotlib.pyplot as plt
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter

from pdr.evaluation.report import ReportRow

METHOD_NAMES = {"pdr": "PDR", "sr": "Sequential Refine", "long_cot": "Long CoT"}
METHOD_STYLE = {
    "pdr": ("tab:blue", "o"),
    "sr": ("tab:orange", "s"),
    "long_cot": ("tab:green", "^"),
}
AXES = (
    ("b_seq", "B_seq: tokens on the critical path (latency)"),
    ("b_tot", "B_tot: all tokens (cost)"),
)


def _tokens(value: float, _position: int | None = None) -> str:
    """A token count as a plain number: 1,000 rather than 10^3."""
    return f"{value:,.0f}"


def _minor_tokens(value: float, _position: int | None = None) -> str:
    """Label the 2s and 5s between powers of ten only, so the labels never overlap."""
    if value <= 0:
        return ""
    mantissa = value / 10 ** math.floor(math.log10(value))
    return _tokens(value) if round(mantissa, 6) in (2.0, 5.0) else ""


def accuracy_figure(rows: Sequence[ReportRow], title: str | None = None) -> Figure:
    """The two-panel figure (accuracy vs B_seq, accuracy vs B_tot) of report rows.

    Each panel holds exactly one line (``Line2D``) per method; the intervals are line
    collections, not lines, so ``ax.get_lines()`` counts the methods.
    """
    figure, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True, layout="constrained")
    methods = list(dict.fromkeys(row.method for row in rows))
    for axis, (budget, xlabel) in zip(axes, AXES, strict=True):
        for method in methods:
            points = sorted(
                (row for row in rows if row.method == method), key=lambda r: getattr(r, budget)
            )
            xs = [float(getattr(row, budget)) for row in points]
            ys = [100 * row.accuracy for row in points]
            color, marker = METHOD_STYLE.get(method, ("tab:gray", "D"))
            axis.plot(xs, ys, marker=marker, color=color, label=METHOD_NAMES.get(method, method))
            axis.vlines(
                xs,
                [100 * row.ci_low for row in points],
                [100 * row.ci_high for row in points],
                colors=color,
                alpha=0.35,
                linewidth=3,
            )
        axis.set_xscale("log")
        # Plain token counts (1,200) rather than powers of ten (1.2 x 10^3) on the log axis.
        axis.xaxis.set_major_formatter(FuncFormatter(_tokens))
        axis.xaxis.set_minor_formatter(FuncFormatter(_minor_tokens))
        axis.margins(x=0.08)
        axis.set_xlabel(xlabel)
        axis.grid(True, which="both", alpha=0.3)
    axes[0].set_ylabel("accuracy (%), 95% Wilson interval")
    axes[0].set_ylim(-2, 102)
    axes[0].legend(loc="best")
    if title:
        figure.suptitle(title)
    return figure


def write_figures(
    rows: Sequence[ReportRow], out_dir: str | Path, stem: str = "accuracy", title: str | None = None
) -> list[Path]:
    """Write ``<stem>.png`` and ``<stem>.svg`` into ``out_dir``; returns their paths.

    Raises:
        ValueError: there are no rows to plot.
    """
    if not rows:
        raise ValueError("no finished runs to plot yet")
    folder = Path(out_dir)
    folder.mkdir(parents=True, exist_ok=True)
    figure = accuracy_figure(rows, title)
    paths = [folder / f"{stem}.png", folder / f"{stem}.svg"]
    try:
        figure.savefig(paths[0], dpi=150)
        # A fixed hash salt and no date keep the SVG byte-identical for identical data.
        with matplotlib.rc_context({"svg.hashsalt": "pdr"}):
            figure.savefig(paths[1], metadata={"Date": None})
    finally:
        plt.close(figure)
    return paths
