"""Evaluation: grids of methods x configurations x seeds over a dataset, reports and figures.

``problems``, ``datasets`` and ``synthetic`` load problem sets and ``grading`` grades answers;
``configs`` says what an experiment runs, ``matching`` picks configurations by measured B_seq,
``harness`` runs an experiment into the run ledger (resumable), ``report`` turns its results into
tables and ``plot`` into figures. The command line's ``pdr eval`` and ``pdr plot`` live in
``pdr.cli.evaluate``.
"""
