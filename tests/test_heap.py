"""pdr.heap: after the imports, full garbage collections no longer walk the import-time heap."""

from __future__ import annotations

import subprocess
import sys


def test_freezing_leaves_collections_a_small_heap() -> None:
    code = (
        "import gc, pdr.runner, pdr.graphs.pdr; from pdr.heap import freeze_imports; "
        "before = len(gc.get_objects()); frozen = freeze_imports(); "
        "print(before, frozen, len(gc.get_objects()))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    before, frozen, after = (int(n) for n in done.stdout.split())
    assert before > 50_000  # LangGraph, LangChain, the openai SDK, SQLAlchemy
    assert frozen >= before
    assert after < 1_000  # what a full collection still has to walk
