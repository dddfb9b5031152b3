"""``mmtune ablate STUDY.yaml``: every cell x fold x seed of an ablation study as Ray Tune trials."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from mmtune.config.loading import parse_overrides


def ablate(
    study_file: Path = typer.Argument(..., help="ablation study YAML (see search_spaces/ictcf_ablation.yaml)"),
    set_: list[str] = typer.Option(None, "--set", help="override a key of the study file: k=v (repeatable)"),
    address: str = typer.Option(
        "local", help="local (start Ray here), auto (the cluster on this node), ray://HOST:PORT"
    ),
    resume: bool = typer.Option(
        False,
        "--resume",
        help="continue an interrupted study, or grow a finished one after adding seeds, cells or factor levels (only the new trials run); finished trials are kept",
    ),
    results: Path = typer.Option(Path("results"), help="results root; the study writes results/<name>/"),
    dry_run: bool = typer.Option(False, "--dry-run", help="validate, print the cells and the number of trials; no Ray"),
    verbose: bool = typer.Option(False, "--verbose", help="show the trials' own logs"),
    num_cpus: int = typer.Option(None, help="CPUs of the local Ray (default: all)"),
    trainable: str = typer.Option(None, hidden=True, help="module:function trial function (tests, benchmarks)"),
    trial_option: list[str] = typer.Option(None, hidden=True, help="k=v into the trials' `mmtune` metadata"),
) -> None:
    """Run an ablation study: cells x folds x seeds as Ray Tune trials, then print the main table.

    Every cell is trained on the same folds and seeds, so comparisons are paired; `mmtune report results/<name>`
    writes the full report (effects with corrected p-values, CD diagram, ROC curves, robustness).
    """
    from mmtune.tuning.ablation import load_study

    study = load_study(study_file, set_ or [])
    if dry_run:
        _dry_run(study)
        return
    from mmtune.console import console
    from mmtune.tuning.driver import load_trial_fn, run_study

    outcome = run_study(
        study,
        results_dir=results,
        address=address,
        resume=resume,
        trial_fn=load_trial_fn(trainable) if trainable else None,
        meta=parse_overrides(trial_option or []),
        verbose=verbose,
        num_cpus=num_cpus,
    )
    from mmtune.analysis.report import print_main_table

    stop = getattr(outcome, "stop", None)
    if len(outcome.usable):
        print_main_table(outcome.paths.root, console)
    from mmtune.cli.outcome import finish

    again = f"mmtune ablate {study_file} --resume" + (f" --results {results}" if results != Path("results") else "")
    finish(study.name, outcome, again, stop)
    console.print(f"full report: mmtune report {outcome.paths.root}", highlight=False)


def _dry_run(study: Any) -> None:
    """Validate without Ray and show the cells and the number of trials."""
    from rich.table import Table

    from mmtune.console import console
    from mmtune.tuning.ablation import check_data, check_registries, expand_with_data
    from mmtune.tuning.data import plan_data

    plan = plan_data(study)
    manifest = plan.manifest
    if manifest is not None:
        check_data(study, manifest)
    design = expand_with_data(study, manifest)
    check_registries(study, design, manifest)
    table = Table(title=f"ablation {study.name} ({study.path}): {study.config.design}", title_justify="left")
    table.add_column("cell")
    for factor in design.factors:
        table.add_column(factor)
    table.add_column("overrides")
    for cell in design.cells:
        overrides = ", ".join(f"{k}={v}" for k, v in cell.overrides.items()) or "(base)"
        table.add_row(cell.name, *(cell.levels[f] for f in design.factors), overrides)
    console.print(table)
    rep = study.config.repeats
    if rep.scheme == "kfold":
        splits = f"{rep.k} folds x {len(rep.seeds)} seed(s) ({rep.partition} partitions)"
    else:
        groups = sorted({r.group for r in design.replicates if r.group})
        splits = f"{len(groups)} held-out groups x {len(rep.seeds)} seed(s)"
        if not groups:
            splits += " (groups unknown until the data are prepared)"
    console.print(
        f"{len(design.cells)} cells x {len(design.replicates)} splits ({splits}) = {len(design.trials)} trials; "
        f"metrics from the {study.config.eval_split} split; data: {plan.describe}"
        + ("" if manifest is not None else " (not prepared yet: data checks skipped)"),
        highlight=False,
    )
