"""Report numbers (accuracy, Wilson interval, means) and the figures written from them."""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from dataclasses import replace
from pathlib import Path

import pytest
from matplotlib.collections import LineCollection

from pdr.evaluation.plot import accuracy_figure, write_figures
from pdr.evaluation.report import (
    ReportRow,
    RunResult,
    csv_text,
    markdown_table,
    summarize,
    wilson_interval,
)


def hand_wilson(k: int, n: int) -> tuple[float, float]:
    """The textbook formula, written out separately from the module's."""
    z = 1.959963984540054
    p = k / n
    denominator = 1 + z**2 / n
    centre = p + z**2 / (2 * n)
    spread = z * math.sqrt(p * (1 - p) / n + z**2 / (4 * n**2))
    return (centre - spread) / denominator, (centre + spread) / denominator


@pytest.mark.parametrize(
    ("k", "n", "low", "high"),
    [
        # Published 95% Wilson intervals (e.g. Newcombe 1998, Table I; Brown, Cai, DasGupta 2001).
        (7, 10, 0.3968, 0.8922),
        (0, 10, 0.0, 0.2775),
        (10, 10, 0.7225, 1.0),
        (81, 263, 0.2553, 0.3662),
        (1, 29, 0.0061, 0.1718),
    ],
)
def test_wilson_interval_matches_published_values(k: int, n: int, low: float, high: float) -> None:
    got = wilson_interval(k, n)
    assert got == pytest.approx((low, high), abs=5e-5)
    assert got == pytest.approx(hand_wilson(k, n), abs=1e-12)


def test_wilson_edge_cases() -> None:
    assert wilson_interval(0, 0) == (0.0, 1.0)
    with pytest.raises(ValueError):
        wilson_interval(3, 2)


def run(
    method: str, label: str, item: int, correct: bool, b_seq: int, b_tot: int, **kw: object
) -> RunResult:
    values: dict[str, object] = {
        "method": method,
        "label": label,
        "item_id": str(item),
        "seed": 0,
        "correct": correct,
        "failed": False,
        "b_seq": b_seq,
        "b_tot": b_tot,
        "wall_s": 1.0,
        "calls": 1,
    }
    values.update(kw)
    return RunResult(**values)  # type: ignore[arg-type]


RUNS = [
    # PDR at two levels; the higher-B_seq one is listed first to check the level order.
    # "pdr big" batched its drafts: 4 drafts read a 100-token prompt once (billed) or 4 times.
    run("pdr", "pdr big", 0, True, 900, 2000, wall_s=3.0, calls=6, b_tot_per_draft=2300),
    run("pdr", "pdr big", 1, True, 1100, 2200, wall_s=5.0, calls=6, b_tot_per_draft=2500),
    run("pdr", "pdr small", 0, True, 400, 800, wall_s=1.5, calls=4),
    run("pdr", "pdr small", 1, False, 500, 900, wall_s=2.5, calls=4),
    run("long_cot", "lc", 0, False, 300, 300),
    run("long_cot", "lc", 1, False, 100, 100, failed=True, calls=3),
    run("long_cot", "lc", 2, True, 200, 200),
]


def test_summarize_computes_exact_means_and_orders_levels() -> None:
    rows = summarize(RUNS)
    # Everything but the interval is exact; the interval matches the hand formula to 1e-12.
    assert [replace(row, ci_low=0.0, ci_high=0.0) for row in rows] == [
        ReportRow("long_cot", 1, "lc", 3, 1, 1, 1 / 3, 0.0, 0.0, 200.0, 200.0, 1.0, 5 / 3, 200.0),
        ReportRow("pdr", 1, "pdr small", 2, 1, 0, 0.5, 0.0, 0.0, 450.0, 850.0, 2.0, 4.0, 850.0),
        ReportRow("pdr", 2, "pdr big", 2, 2, 0, 1.0, 0.0, 0.0, 1000.0, 2100.0, 4.0, 6.0, 2400.0),
    ]
    intervals = [(row.ci_low, row.ci_high) for row in rows]
    expected = [hand_wilson(1, 3), hand_wilson(1, 2), hand_wilson(2, 2)]
    for got, want in zip(intervals, expected, strict=True):
        assert got == pytest.approx(want, abs=1e-12)


def test_tables() -> None:
    rows = summarize(RUNS)
    table = markdown_table(rows).splitlines()
    assert table[0] == (
        "| method | level | configuration | n | accuracy | 95% CI | B_seq | B_tot billed "
        "| B_tot per draft | wall s | calls |"
    )
    assert (
        table[2]
        == "| long_cot | 1 | lc | 3 (1 failed) | 33.3% | 6.1-79.2% | 200 | 200 | 200 | 1.0 | 1.7 |"
    )
    assert table[4] == (
        "| pdr | 2 | big | 2 | 100.0% | 34.2-100.0% | 1,000 | 2,100 | 2,400 | 4.0 | 6.0 |"
    )
    lines = csv_text(rows).splitlines()
    assert lines[0] == (
        "method,level,label,n,correct,failed,accuracy,ci_low,ci_high,b_seq,b_tot,wall_s,calls,"
        "b_tot_per_draft"
    )
    assert lines[3].startswith("pdr,2,pdr big,2,2,0,1.0,")


def test_figure_has_one_line_per_method_on_log_axes() -> None:
    rows = summarize(RUNS)
    figure = accuracy_figure(rows)
    axes = figure.axes
    assert len(axes) == 2
    for axis, budget in zip(axes, ("b_seq", "b_tot"), strict=True):
        assert axis.get_xscale() == "log"
        lines = axis.get_lines()
        assert [line.get_label() for line in lines] == ["Long CoT", "PDR"]
        pdr = lines[1]
        assert list(pdr.get_xdata()) == [getattr(r, budget) for r in rows if r.method == "pdr"]
        assert list(pdr.get_ydata()) == [50.0, 100.0]
        # One interval bar per point, drawn as line collections (not counted as lines).
        bars = [c for c in axis.collections if isinstance(c, LineCollection)]
        assert sum(len(c.get_segments()) for c in bars) == 3
    assert "B_seq" in axes[0].get_xlabel() and "B_tot" in axes[1].get_xlabel()


def test_figures_are_written_as_png_and_svg(tmp_path: Path) -> None:
    paths = write_figures(summarize(RUNS), tmp_path / "out", stem="fig", title="test")
    assert [p.name for p in paths] == ["fig.png", "fig.svg"]
    png, svg = paths
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert png.stat().st_size > 10_000
    assert ET.parse(svg).getroot().tag.endswith("svg")
    # Same data, same SVG bytes (no timestamps, fixed ids): committed figures diff cleanly.
    again = write_figures(summarize(RUNS), tmp_path / "again", stem="fig", title="test")
    assert again[1].read_bytes() == svg.read_bytes()
    with pytest.raises(ValueError, match="no finished runs"):
        write_figures([], tmp_path)
