"""Evaluation: grids of methods x configurations x seeds over a dataset, reports and figures.

``harness`` runs an experiment into the run ledger (resumable, with budget matching),
``report`` turns its results into tables, ``plot`` into figures, and ``commands`` adds
``pdr eval`` and ``pdr plot`` to the command line.
"""
