"""The results as markdown: ratios with their ranges, the machine, the load, the versions."""

from __future__ import annotations

from typing import Any


def cell_ratio(entry: dict[str, Any] | None) -> str:
    """``1.02 (1.00..1.05)`` from a ratio entry, or a dash."""
    if not entry or entry.get("median") is None:
        return "-"
    return f"{entry['median']:.2f} ({entry['min']:.2f}..{entry['max']:.2f})"


def table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def orchestration(cells: list[dict[str, Any]], title: str) -> list[str]:
    tools = [name for name in cells[0]["tools"] if name != "asyncio floor"] if cells else []
    for cell in cells:
        tools += [t for t in cell["tools"] if t not in tools and t != "asyncio floor"]
    header = ["cell", "calls", "ideal s", "floor / ideal", *tools]
    rows = [
        [
            cell["cell"],
            str(cell["calls"]),
            f"{cell['ideal_s']:.3f}",
            cell_ratio(cell["floor_over_ideal"]),
            *(cell_ratio(cell["tools"].get(t, {}).get("ratio")) for t in tools),
        ]
        for cell in cells
    ]
    spreads = [
        [
            cell["cell"],
            *(
                f"{cell['tools'][t]['stage_spread_s']['median'] * 1000:.0f} ms, "
                f"{cell['tools'][t]['cpu_s']['median'] * 1000:.0f} ms, "
                f"{cell['tools'][t]['full_gc']['count']}"
                if t in cell["tools"]
                else "-"
                for t in ["asyncio floor", *tools]
            ),
        ]
        for cell in cells
    ]
    return [
        f"### {title}",
        "",
        "Wall time over the asyncio floor's (median of the repeats, min..max of the paired "
        "ratios):",
        "",
        *table(header, rows),
        "",
        "Widest spread of a stage's arrivals, client CPU per run, full garbage collections "
        "during the tool's runs:",
        "",
        *table(["cell", "asyncio floor", *tools], spreads),
        "",
    ]


def render(results: dict[str, Any]) -> str:
    m = results["machine"]
    lines = [
        "# pdr benchmarks",
        "",
        f"`{results['command']}` on {m['date']}: {m['cpu']}, {m['cores']} cores, "
        f"{m['memory_gib']} GiB, Python {m['python']}, {m['platform']}.",
        "",
        "Versions: " + ", ".join(f"{k} {v}" for k, v in m["versions"].items() if v) + ".",
        "",
        "Load (1-minute average) at the start and end of each section: "
        + "; ".join(
            f"{name} {load['start']:.1f} -> {load['end']:.1f}"
            for name, load in results["load"].items()
        )
        + ".",
        "",
        "Every figure is a ratio against a baseline measured in the same run, its repeats "
        "interleaved with the baseline's; seconds are given only for context.",
        "",
    ]
    for note in results.get("skipped", []):
        lines += [f"Skipped: {note}", ""]
    if "orchestration" in results:
        o = results["orchestration"]
        lines += [
            "## Orchestration",
            "",
            f"Simulated server: {o['timing']}; {o['repeats']} repeats per tool.",
            "",
        ]
        titles = {
            "main": "Schedules",
            "batched": "Batched drafts (one n = M request per workspace)",
            "operators": "Distill operators",
        }
        for group, cells in o["cells"].items():
            lines += orchestration(cells, titles.get(group, group))
        if "mars" in o:
            mars = o["mars"]
            lines += [
                "### optillm's mars approach",
                "",
                f"One request through optillm ({mars['calls']} calls in {len(mars['stages'])} "
                f"stages at the server): wall over its ideal {cell_ratio(mars['over_ideal'])}, "
                f"over the floor replaying its calls {cell_ratio(mars['over_floor'])}.",
                "",
            ]
    lines += gc_lines(results.get("gc"))
    lines += profile_lines(results.get("profile"))
    lines += scale_lines(results.get("scale"))
    lines += embedded_lines(results.get("embedded"))
    lines += startup_lines(results.get("startup"))
    return "\n".join(lines).rstrip() + "\n"


def gc_lines(found: dict[str, Any] | None) -> list[str]:
    if not found:
        return []
    rows = [
        [
            name,
            f"{p['runs_with_a_full_collection']}/{p['runs']}",
            f"{p['full_collection_s']['median'] or 0:.3f}",
            f"{p['full_collection_s']['max'] or 0:.3f}",
            f"{p['wall_s_median']:.2f}",
            f"{p['wall_s_max']:.2f}",
        ]
        for name, p in found["processes"].items()
    ]
    return [
        "## Full garbage collections during a round",
        "",
        f"{found['cell']}, processes in turns, one round after another:",
        "",
        *table(
            [
                "process",
                "runs hit",
                "collection s (median)",
                "collection s (max)",
                "wall s (median)",
                "wall s (max)",
            ],
            rows,
        ),
        "",
    ]


def profile_lines(profile: dict[str, Any] | None) -> list[str]:
    if not profile:
        return []
    lines = [
        "## Profile of an M = 64 round (py-spy, client CPU per run)",
        "",
        f"Simulated server: {profile.get('timing')}; the heap frozen after the warm-up.",
        "",
    ]
    for tool, found in profile.items():
        if tool == "timing":
            continue
        if "skipped" in found:
            lines += [f"{tool}: skipped: {found['skipped']}", ""]
            continue
        libraries = ", ".join(f"{name} {ms} ms" for name, ms in found["by_library_ms"].items())
        top = "; ".join(f"{name} {ms} ms" for name, ms in found["top_functions_ms"][:6])
        lines += [f"- {tool}: {found['cpu_ms_per_run']} ms: {libraries}. Top: {top}.", ""]
    return lines


def scale_lines(scale: dict[str, Any] | None) -> list[str]:
    if not scale:
        return []
    r, e = scale["round"], scale["evaluation"]
    rows = [
        [name, f"{p['peak_rss_mb']:.0f}", f"{p['rss_after_imports_mb']:.0f}"]
        for name, p in r["processes"].items()
    ]
    evals = [
        [
            name,
            f"{p['peak_rss_mb']:.0f}",
            str(p.get("failed_runs", 0)),
            str(p["calls"]),
            str(p["most_in_flight"]),
            f"{p['calls_per_s']:.1f}",
            f"{p['ideal_calls_per_s']:.1f}",
            f"{p['over_ideal']:.2f}",
        ]
        for name, p in e["processes"].items()
    ]
    return [
        "## Memory and scale",
        "",
        f"{r['cell']}, one round after a warm-up: peak RSS over the floor's "
        f"{r['peak_rss_over_floor']:.2f}.",
        "",
        *table(["process", "peak RSS MB", "RSS after imports MB"], rows),
        "",
        f"Evaluation of {e['problems']} generated problems, PDR {e['schedule']} with the summary, "
        f"cap {e['cap']} calls in flight: wall over the floor's {e['wall_over_floor']:.2f}, peak "
        f"RSS over the floor's {e['peak_rss_over_floor']:.2f}.",
        "",
        *table(
            [
                "process",
                "peak RSS MB",
                "failed runs",
                "calls",
                "most in flight",
                "calls/s",
                "cap-limited ideal calls/s",
                "over ideal",
            ],
            evals,
        ),
        "",
    ]


def embedded_lines(embedded: dict[str, Any] | None) -> list[str]:
    if not embedded:
        return []
    if "skipped" in embedded:
        return ["## Embedded model", "", f"Skipped: {embedded['skipped']}", ""]
    lines = [
        "## Embedded model: tokens/s against the machine's limit",
        "",
        f"{embedded['model']} ({embedded['model_file']}), {embedded['tokens_per_draft']} tokens "
        f"a draft; pdr's pool: {embedded['pool']['instances']} instances sharing "
        f"{embedded['pool']['threads']} thread(s).",
        "",
    ]
    for drafts, found in embedded["by_drafts"].items():
        rows = [
            [
                name,
                f"{rate['median']:.1f} ({rate['min']:.1f}..{rate['max']:.1f})",
                cell_ratio(found["over_single"][name]),
                cell_ratio(found["batched_over_pool"].get(name)),
            ]
            for name, rate in found["tokens_per_s"].items()
        ]
        lines += [
            f"M = {drafts} drafts:",
            "",
            *table(["way", "tokens/s", "over single", "over pdr pool"], rows),
            "",
        ]
    verdict = "adopted" if embedded["adopt_batched"] else "not adopted (below 1.5x the pool)"
    return [*lines, f"Batched decoding: {verdict}.", ""]


def startup_lines(startup: dict[str, Any] | None) -> list[str]:
    if not startup:
        return []
    rows = [
        [
            name,
            f"{s['median']:.2f} ({s['min']:.2f}..{s['max']:.2f})",
            cell_ratio(startup["over_python"].get(name)),
        ]
        for name, s in startup["seconds"].items()
    ]
    runs = [
        [
            name,
            f"{first['median']:.2f} ({first['min']:.2f}..{first['max']:.2f})",
            f"{startup['after_last_reply_s'][name]['median']:.2f}",
        ]
        for name, first in startup["first_request_s"].items()
    ]
    imports = ", ".join(
        f"{row['module']} {row['cumulative_s']:.2f} s" for row in startup["imports_pdr_cli"][:5]
    )
    return [
        "## Start-up",
        "",
        *table(["process", "seconds", "over python -c pass"], rows),
        "",
        *table(
            ["command", "first request, s after the command", "exit, s after the last reply"], runs
        ),
        "",
        f"Costliest imports of `import pdr.cli` (cumulative): {imports}.",
        "",
    ]
