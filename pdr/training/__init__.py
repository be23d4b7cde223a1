"""Operator-consistent training (``pdr train``): CISPO + alpha * SFT on a 50/50 rollout mixture.

Long-trace rollouts come from the ``long_cot`` graph, operator rollouts from the ``pdr`` graph with
one round; TRL's ``GRPOTrainer`` does the optimisation (``pdr.training.objective`` adds what it
lacks). Needs the ``train`` extra; this package imports torch and TRL only when a training starts,
and the runner and the ledger only when ``train`` or ``TrainResult`` is first used (so that
``pdr --help`` loads neither).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pdr.training.settings import TrainError, TrainSettings

if TYPE_CHECKING:
    from pdr.training.api import TrainResult, train

__all__ = ["TrainError", "TrainResult", "TrainSettings", "train"]


def __getattr__(name: str) -> Any:
    """``train`` and ``TrainResult`` from ``pdr.training.api``, imported on first use."""
    if name in ("train", "TrainResult"):
        from pdr.training import api

        return getattr(api, name)
    raise AttributeError(f"module 'pdr.training' has no attribute {name!r}")
