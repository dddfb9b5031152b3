"""``mmtune evaluate RUN... --data PREPARED``: external validation with calibration, operating point, net benefit,
hospital and subgroup tables and a model card."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def evaluate(
    runs: Annotated[list[Path], typer.Argument(help="run dirs, trial dirs or checkpoints (several: --ensemble)")],
    data: Annotated[Path, typer.Option("--data", help="prepared data set to evaluate on")],
    name: Annotated[str | None, typer.Option("--name", help="results/<name> (default: <data>_<run>)")] = None,
    results: Annotated[Path, typer.Option("--results", help="results root directory")] = Path("results"),
    ensemble: Annotated[bool, typer.Option("--ensemble", help="average the RUNs' probabilities")] = False,
    split: Annotated[str, typer.Option("--split", help="test | val | train | all")] = "all",
    config: Annotated[
        Path | None,
        typer.Option("--config", help="YAML with a `clinical:` section (targets, threshold rule, subgroups)"),
    ] = None,
) -> None:
    """Score trained models on a prepared data set; writes predictions, metrics.json, tables and a report."""
    from mmtune.console import console
    from mmtune.inference.align import SPLIT_CHOICES, AlignmentError
    from mmtune.inference.evaluate import evaluate as run_evaluate
    from mmtune.inference.evaluate import load_settings

    if split not in SPLIT_CHOICES:
        raise AlignmentError(f"--split: expected one of {', '.join(SPLIT_CHOICES)}, got {split!r}")
    settings = load_settings(config)
    for written in run_evaluate(
        list(runs), data, name=name, results=results, ensemble=ensemble, split=split, settings=settings
    ):
        shown = {k: v for k, v in written.metrics.items() if k.rsplit("/", 1)[-1] in HEADLINE}
        for key, value in shown.items():
            console.print(f"{key:40s} {value:.3f}", highlight=False)
        console.print(f"report: {written.report}", highlight=False)


HEADLINE = ("auroc", "brier", "ece", "calibration_intercept", "calibration_slope", "sensitivity", "specificity")
