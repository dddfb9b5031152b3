"""``mmtune confirm results/<study>``: re-train a search's top configurations over repeated CV of the non-test
patients (paired tests, Holm), then score each once on the held-out test split."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from mmtune.config.loading import parse_overrides
from mmtune.tuning.confirm import DEFAULT_FOLDS, DEFAULT_SEEDS, DEFAULT_TOP


def confirm(
    study_dir: Path = typer.Argument(..., help="a finished search's results directory (results/<study>)"),
    top: int = typer.Option(
        DEFAULT_TOP, "--top", help="confirm the K best complete trials (by the search's val metric)"
    ),
    baseline: str = typer.Option(
        None, "--baseline", help="a trial id of the study, or k=v,... overrides of the search's base config"
    ),
    folds: int = typer.Option(DEFAULT_FOLDS, "--folds", help="k of the stratified k-fold of the non-test patients"),
    seeds: int = typer.Option(DEFAULT_SEEDS, "--seeds", help="seeds (each a fresh partition and initialisation)"),
    results: Path = typer.Option(None, help="results root (default: beside the study); writes <root>/<study>_confirm/"),
    resume: bool = typer.Option(False, "--resume", help="continue an interrupted confirmation"),
    address: str = typer.Option(
        "local", help="local (start Ray here), auto (the cluster on this node), ray://HOST:PORT"
    ),
    verbose: bool = typer.Option(False, "--verbose", help="show the trials' own logs"),
    num_cpus: int = typer.Option(None, help="CPUs of the local Ray (default: all)"),
    trainable: str = typer.Option(None, hidden=True, help="module:function trial function (tests, benchmarks)"),
    trial_option: list[str] = typer.Option(None, hidden=True, help="k=v into the trials' `mmtune` metadata"),
) -> None:
    """Confirm a search's winner: top K (+ baseline) over folds x seeds, then once on the held-out test split.

    Writes results/<study>_confirm/ (an ablation results directory, the test predictions of each configuration's
    fold-model ensemble, and confirm/report.md + report.html).
    """
    from mmtune.tuning.confirm import plan_confirm

    plan = plan_confirm(study_dir, top=top, baseline=baseline, folds=folds, seeds=seeds, results=results, resume=resume)
    run_plan(
        plan,
        address=address,
        resume=resume,
        trainable=trainable,
        trial_option=trial_option,
        verbose=verbose,
        num_cpus=num_cpus,
    )


def run_plan(
    plan: Any,
    *,
    address: str = "local",
    resume: bool = False,
    trainable: str | None = None,
    trial_option: list[str] | None = None,
    verbose: bool = False,
    num_cpus: int | None = None,
) -> None:
    """Run a checked plan and print its findings (also used by `mmtune tune --confirm K`)."""
    from mmtune.console import console, err_console
    from mmtune.tuning.confirm import run_confirm
    from mmtune.tuning.driver import load_trial_fn

    err_console.print(
        f"confirm {plan.source.name}: {len(plan.levels)} configurations "
        f"({', '.join(lv.name + (' (baseline)' if lv.name == plan.baseline else '') for lv in plan.levels)}) x "
        f"{plan.folds} folds x {plan.seeds} seed(s) = {plan.n_trials} trials -> {plan.out}",
        highlight=False,
        soft_wrap=True,
    )
    outcome, report = run_confirm(
        plan,
        address=address,
        resume=resume,
        trial_fn=load_trial_fn(trainable) if trainable else None,
        meta=parse_overrides(trial_option or []),
        verbose=verbose,
        num_cpus=num_cpus,
    )
    if report is not None:
        for sentence in report.analysis.sentences:
            console.print(f"- {sentence}", highlight=False, soft_wrap=True)
        console.print(f"confirmation report: {report.markdown} (and report.html)", highlight=False)
        console.print(f"test predictions: {report.predictions}", highlight=False)
    if not outcome.complete:
        err_console.print(
            f"confirmation {plan.name} is not finished; continue it with: mmtune confirm {plan.source.root} "
            "--resume (same options)",
            highlight=False,
            soft_wrap=True,
        )
        raise typer.Exit(130)
