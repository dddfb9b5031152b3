"""``mmtune report RESULTS_DIR``: tables with CIs and significance tests, plots, markdown + HTML."""

from __future__ import annotations


def report() -> None:
    """Write a report for a tuning or ablation results directory."""
    raise NotImplementedError
