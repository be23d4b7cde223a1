"""Start-up: the command line's help loads no heavy library; its names agree with the registries.

``pdr --help`` used to import LangGraph, LangChain, SQLAlchemy and the evaluation harness (2-4 s
here); the help needs only the run contexts' fields and the names of graphs, operators and
scorers. How long start-up takes is measured by the benchmarks (``python -m benchmarks``).
"""

from __future__ import annotations

import subprocess
import sys

from pdr.graphs import catalog
from pdr.nodes.distill import OPERATOR_NAMES
from pdr.nodes.scoring import SCORERS

HEAVY = (
    "langgraph",
    "langchain_core",
    "langchain_openai",
    "openai",
    "sqlalchemy",
    "llama_cpp",
    "matplotlib",
    "numpy",
    "pdr.runner",
    "pdr.evaluation.harness",
)


def test_importing_the_command_line_loads_no_heavy_library() -> None:
    code = f"import sys; import pdr.cli; print(','.join(m for m in {HEAVY!r} if m in sys.modules))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == ""


def test_help_runs_without_them_too() -> None:
    code = (
        "import sys; from typer.testing import CliRunner; from pdr.cli import app; "
        "result = CliRunner().invoke(app, ['run', '--help']); assert result.exit_code == 0; "
        "assert '--max-concurrency' in result.output; "
        f"print(','.join(m for m in {HEAVY!r} if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == ""


def test_the_catalogs_names_are_the_registries_names() -> None:
    assert catalog.DISTILL_NAMES == OPERATOR_NAMES
    assert tuple(sorted(SCORERS)) == catalog.SCORER_NAMES
