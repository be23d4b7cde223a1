"""Operator-consistent training (``pdr train``): CISPO + alpha * SFT on a 50/50 rollout mixture.

Long-trace rollouts come from the ``long_cot`` graph, operator rollouts from the ``pdr`` graph with
one round; TRL's ``GRPOTrainer`` does the optimisation (``pdr.training.objective`` adds what it
lacks). Needs the ``train`` extra; this package imports torch and TRL only when a training starts.
"""

from pdr.training.api import TrainResult, train
from pdr.training.settings import TrainError, TrainSettings

__all__ = ["TrainError", "TrainResult", "TrainSettings", "train"]
