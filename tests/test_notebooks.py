"""The notebooks run top to bottom in a real Jupyter kernel (nbclient), and are stored clean.

The kernel is a separate Python process; it imports tests/notebook_models.py (named by
``PDR_NOTEBOOK_MODELS_MODULE``), which registers the scripted stand-in model "scripted": a double
for the embedded model, which would take minutes on a CPU. Everything else is real: the compiled
graphs, the SQLite checkpointer in a temporary folder, matplotlib.
"""

from __future__ import annotations

import inspect
import os
import re
from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbclient import NotebookClient

from tests.test_custom_distill import majority_summary

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


def outputs_of(notebook: Any) -> list[str]:
    """Every text output of every code cell, in order (streams and plain-text results)."""
    texts = []
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            if output["output_type"] == "stream":
                texts.append(output["text"])
            elif "data" in output and "text/plain" in output["data"]:
                texts.append(output["data"]["text/plain"])
    return texts


@pytest.fixture
def stand_in_kernel_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """What the kernel inherits: the stand-in model and the project on its path."""
    monkeypatch.setenv("PDR_NOTEBOOK_MODEL", "scripted")
    monkeypatch.setenv("PDR_NOTEBOOK_MODELS_MODULE", "tests.notebook_models")
    monkeypatch.setenv(
        "PYTHONPATH", os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    )
    # matplotlib's inline backend (the kernel's default) returns the plot as a PNG output.
    monkeypatch.delenv("MPLBACKEND", raising=False)


def test_there_is_a_quickstart() -> None:
    assert "quickstart.ipynb" in [path.name for path in NOTEBOOKS]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.name)
def test_committed_notebooks_have_no_outputs(path: Path) -> None:
    notebook = nbformat.read(path, as_version=4)
    nbformat.validate(notebook)
    for cell in notebook.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [], f"{path.name}: strip the outputs before committing"
            assert cell.execution_count is None


@pytest.mark.slow
def test_quickstart_runs_on_the_stand_in_model(stand_in_kernel_env: None, tmp_path: Path) -> None:
    notebook = nbformat.read(ROOT / "notebooks" / "quickstart.ipynb", as_version=4)
    client = NotebookClient(
        notebook,
        timeout=120,
        kernel_name="python3",
        resources={"metadata": {"path": str(tmp_path)}},
    )
    client.execute()

    text = "\n".join(outputs_of(notebook))
    # Section 1: the answer and the budgets; section 2: the progress events of schedule [3, 1].
    assert "answer: 391" in text
    assert "'draft_finished': 3," in text
    assert "'workspace_written': 1," in text
    # Section 3: the ledger table of that run: the summary call, 12 output tokens (its reply).
    assert re.search(r"^distill +1 +0 +\d+ +12 False$", text, re.MULTILINE)
    # Section 4: the SQLite history of a [2, 2, 1] run, 8 checkpoints.
    assert "8 checkpoints in" in text
    # Section 5: the swapped distiller ran and its summary call is in the ledger.
    assert "workspace: Notes: the attempts agree on 391" in text
    assert "Counter({'draft': 3, 'refine': 1})" in text  # top-k by vote: no distill call
    # Section 6: the stand-in slips on odd first factors in long CoT (17 * 23, 21 * 14).
    assert "long CoT       accuracy 0.33" in text
    assert "PDR [3, 1]     accuracy 1.00" in text
    # The plot was drawn.
    figures = [
        output
        for cell in notebook.cells
        for output in cell.get("outputs", [])
        if "image/png" in output.get("data", {})
    ]
    assert len(figures) == 1


def test_quickstart_shows_the_readme_distiller() -> None:
    notebook = nbformat.read(ROOT / "notebooks" / "quickstart.ipynb", as_version=4)
    sources = "\n".join(cell.source for cell in notebook.cells)
    assert inspect.getsource(majority_summary) in sources
