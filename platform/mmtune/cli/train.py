"""``mmtune train CONFIG.yaml``: one run with plain Lightning (no Tune)."""

from __future__ import annotations

import math
from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer

HEADLINE = ("auroc", "ap", "balanced_accuracy", "f1", "mae", "spearman", "dice", "iou", "mse")


def train(
    config: Annotated[Path, typer.Argument(help="Run config YAML (see configs/*.yaml).")],
    set_: Annotated[
        list[str] | None,
        typer.Option("--set", help="Override a key: --set optim.lr=3e-4 --set model.fusion.name=gated."),
    ] = None,
    out: Annotated[
        Path | None, typer.Option("--out", help="Run directory (default: <output_dir>/<name>-<timestamp>).")
    ] = None,
) -> None:
    """Train one model from a run config; writes config, best checkpoint, metrics and predictions."""
    from mmtune.config.loading import parse_overrides
    from mmtune.config.run import load_run_config

    cfg = load_run_config(config, parse_overrides(set_))
    run_dir = out or Path(cfg.output_dir) / f"{cfg.name}-{datetime.now():%Y%m%d-%H%M%S}"

    from mmtune.training.fit import fit

    result = fit(cfg, run_dir)
    _print_summary(result, [t.name for t in cfg.tasks])


def _print_summary(result: object, tasks: list[str]) -> None:
    from rich.table import Table

    from mmtune.console import console

    metrics: dict[str, float] = result.metrics  # type: ignore[attr-defined]
    table = Table(title=f"best epoch {result.best_epoch} of {result.epochs}")  # type: ignore[attr-defined]
    table.add_column("task")
    table.add_column("metric")
    table.add_column("val", justify="right")
    table.add_column("test", justify="right")
    for task in tasks:
        for name in HEADLINE:
            val, test = metrics.get(f"val/{task}/{name}"), metrics.get(f"test/{task}/{name}")
            if val is None and test is None:
                continue
            table.add_row(task, name, _fmt(val), _fmt(test))
    if "val/mean_auroc" in metrics:
        table.add_row("all", "mean_auroc", _fmt(metrics.get("val/mean_auroc")), _fmt(metrics.get("test/mean_auroc")))
    console.print(table)
    for key, path in result.paths.items():  # type: ignore[attr-defined]
        console.print(f"{key:12s} {path}", highlight=False)
    if result.aim_hash:  # type: ignore[attr-defined]
        console.print(f"{'aim run':12s} {result.aim_hash}", highlight=False)  # type: ignore[attr-defined]


def _fmt(value: float | None) -> str:
    if value is None or math.isnan(value):
        return "-"
    return f"{value:.3f}"
